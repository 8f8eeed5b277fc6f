"""Seed example 7: a Lock guarding `counter.value += 1` in three processes."""
import mproc as multiprocessing


def increment(counter, lock, times):
    for _ in range(times):
        with lock:
            counter.value += 1


if __name__ == "__main__":
    counter = multiprocessing.Value("i", 0, lock=False)
    lock = multiprocessing.Lock()
    processes = [multiprocessing.Process(target=increment, args=(counter, lock, 5))
                 for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    print(f"Final counter value: {counter.value}")
