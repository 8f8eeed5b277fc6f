"""Seed example 5: producer/consumer over a Queue, ended by a None poison pill."""
import mproc as multiprocessing


def producer(queue):
    for item in "ABCD":
        print(f"Producing {item}")
        queue.put(item)
    queue.put(None)  # poison pill


def consumer(queue):
    while True:
        item = queue.get()
        if item is None:
            break
        print(f"Consuming {item}")


if __name__ == "__main__":
    queue = multiprocessing.Queue()
    p = multiprocessing.Process(target=producer, args=(queue,))
    c = multiprocessing.Process(target=consumer, args=(queue,))
    p.start()
    c.start()
    p.join()
    c.join()
    print("Producer and consumer finished")
