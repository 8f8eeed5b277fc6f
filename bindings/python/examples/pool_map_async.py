"""Seed example 3: map_async of cubes."""
import mproc as multiprocessing


def cube(n):
    return n ** 3


if __name__ == "__main__":
    with multiprocessing.Pool(3) as pool:
        result = pool.map_async(cube, [1, 2, 3])
        print(f"Cubes: {result.get(timeout=30)}")
