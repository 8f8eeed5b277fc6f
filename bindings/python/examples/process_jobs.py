"""Seed example 1: one Process per job."""
import os

import mproc as multiprocessing


def worker(job):
    print(f"Worker {job} running in process {os.getpid()}")


if __name__ == "__main__":
    processes = [multiprocessing.Process(target=worker, args=(f"job-{i}",)) for i in range(1, 4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    print("All processes completed")
