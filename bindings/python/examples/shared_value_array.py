"""Seed example 6: a Value and an Array changed by a child process."""
import mproc as multiprocessing


def modify(number, count, arr):
    number.value = 3.1415927
    count.value += 1
    for i in range(len(arr)):
        arr[i] = arr[i] * 2


if __name__ == "__main__":
    number = multiprocessing.Value("d", 0.0)
    count = multiprocessing.Value("i", 0)
    arr = multiprocessing.Array("d", [1.0, 2.0, 3.0])
    p = multiprocessing.Process(target=modify, args=(number, count, arr))
    p.start()
    p.join()
    print(f"Value: {number.value}")
    print(f"Count: {count.value}")
    print(f"Array: {arr[:]}")
