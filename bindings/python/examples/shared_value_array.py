"""Seed example 6: a Value('i', 0) and an Array('d', [1.0, 2.0, 3.0]) changed by children."""
import mproc as multiprocessing


def work(counter, arr):
    for _ in range(100):
        with counter.get_lock():
            counter.value += 1
    if multiprocessing.current_process().name == "Process-1":
        for i in range(len(arr)):
            arr[i] = arr[i] * 2


if __name__ == "__main__":
    counter = multiprocessing.Value("i", 0)
    arr = multiprocessing.Array("d", [1.0, 2.0, 3.0])
    processes = [multiprocessing.Process(target=work, args=(counter, arr)) for _ in range(10)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    print(f"Final counter: {counter.value}")
    print(f"Modified array: {arr[:]}")
