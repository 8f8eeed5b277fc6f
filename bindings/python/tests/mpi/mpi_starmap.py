"""starmap and starmap_async unpack argument tuples."""
import operator

from mproc import mpi

def main():
    pairs = [(i, i + 1) for i in range(50)]
    with mpi.Pool() as pool:
        assert pool.starmap(operator.mul, pairs) == [a * b for a, b in pairs]
        assert pool.starmap(pow, pairs, chunksize=1) == [a ** b for a, b in pairs]
        got = []
        r = pool.starmap_async(max, pairs, callback=got.append)
        assert r.get(30) == [b for a, b in pairs] and got == [r.get()]


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
