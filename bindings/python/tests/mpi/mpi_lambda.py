"""Lambdas, closures and functions of __main__ reach the workers (cloudpickle for what pickle
refuses; the script loaded as __mp_main__ for the rest) and the __main__ block runs only on
rank 0."""
from mproc import mpi

RUNS = []
OFFSET = 100


def plus_offset(x):
    return x + OFFSET


def main():
    k = 3
    with mpi.Pool() as pool:
        assert pool.map(lambda x: x * k, range(10)) == [x * 3 for x in range(10)]
        assert pool.apply(lambda: "λ") == "λ"
        assert pool.map(plus_offset, [1, 2]) == [101, 102]
        # workers did not run this block: RUNS is empty there
        assert pool.apply(len, (RUNS,)) == 0


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
else:
    RUNS.append(__name__)  # on workers: loaded as __mp_main__
