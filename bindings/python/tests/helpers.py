"""Functions the tests run in children (importable by name, so forkserver children find them)."""
import os
import signal
import sys
import time


def square(x):
    return x * x


def add(a, b):
    return a + b


def ident(x):
    return x


def fail(x):
    raise ValueError("bad value %r" % (x,))


def exit_with(code):
    sys.exit(code)


def die(x):
    os._exit(7)


def kill_self(x):
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_forever(x=None):
    while True:
        time.sleep(1)


def pid_of(x=None):
    return os.getpid()


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling calls __init__ with args=(msg,): cannot be rebuilt
        super().__init__("%s %s" % (a, b))


def raise_unpicklable(x):
    raise Unpicklable(x, x)


_state = {}


def init_state(value):
    _state["v"] = value


def read_state(x):
    return _state.get("v"), x


def bad_init():
    raise RuntimeError("init broke")


def report_pid_then_sleep(fifo):
    with open(fifo, "w") as f:
        f.write(str(os.getpid()))
    sleep_forever()


def put_items(q, items):
    for x in items:
        q.put(x)


def locked_increments(counter, lock, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def atomic_increments(counter, n):
    for _ in range(n):
        counter.fetch_add(1)


def hold_lock_and_die(lock, started):
    lock.acquire()
    started.set()
    os._exit(0)


def set_event(ev):
    ev.set()


def barrier_wait(b):
    return b.wait()


def double_array(arr):
    for i in range(len(arr)):
        arr[i] = arr[i] * 2


def echo_pipe(conn):
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:  # the child holds a copy of the other end too: EOF never comes
            return
        conn.send(msg)


def write_shm(name, data):
    from mproc import shared_memory
    m = shared_memory.SharedMemory(name)
    m.buf[:len(data)] = data
    m.close()


def consume_joinable(q):
    while True:
        item = q.get()
        q.task_done()
        if item is None:
            return


def notify_after_set(cond, flag):
    with cond:
        flag.value = 1
        cond.notify_all()


def add_in_pool(v):
    v.fetch_add(1)
    return v.load()


def sleep_then(x, seconds=0.05):
    time.sleep(seconds)
    return x


def nested_pool_map(depth):
    """A pool made inside a pool worker; at depth > 1 its workers do the same."""
    import mproc
    with mproc.Pool(2) as p:
        if depth <= 1:
            return p.map(square, range(4))
        return p.map(nested_pool_map, [depth - 1, depth - 1])


def nested_process_exitcode(code):
    import mproc
    p = mproc.Process(target=exit_with, args=(code,))
    p.start()
    p.join()
    return p.exitcode


def fill_managed(d, key, value):
    d[key] = value


def attach_shm_then_sleep(name, fifo):
    from mproc import shared_memory
    m = shared_memory.SharedMemory(name)
    with open(fifo, "w") as f:
        f.write("attached")
    sleep_forever()
    m.close()


def attach_shm_and_close(name):
    from mproc import shared_memory
    m = shared_memory.SharedMemory(name)
    v = bytes(m.buf[:5])
    m.close()
    return v


def append_pid_then_sleep(path):
    with open(path, "a") as f:
        f.write("%d\n" % os.getpid())
    sleep_forever()



def signal_then_wait(pid, go, done, x):
    """A pool task: sends SIGINT to pid (the caller), waits for go (at most 60 s), sets done,
    returns x."""
    os.kill(pid, signal.SIGINT)
    go.wait(60)
    done.set()
    return x


def value_ops(v, n):
    """In a child: n increments of a Value's .value under its lock."""
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def touch_or_fail(path):
    """Creates path, or raises for a path ending in "bad" (a failing map item)."""
    if path.endswith("bad"):
        raise ValueError("bad item " + path)
    open(path, "w").close()
    return path


def wait_file_if_zero(arg):
    """(x, path): x == 0 waits (60 s at most) until path exists; returns x."""
    x, path = arg
    if x == 0:
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
    return x


def identity_of_worker(x=None):
    """The pool worker's multiprocessing-style identity, as the standard library's idioms read it."""
    import multiprocessing
    p = multiprocessing.current_process()
    return p._identity, p.name


def type_changes(x):
    """An int for most items, a float, a str or a big int for some: a chunk's results change
    type part of the way through."""
    if x % 7 == 3:
        return x / 2
    if x % 11 == 5:
        return "s%d" % x
    if x % 13 == 6:
        return x * 2 ** 70
    return x


def fail_at_500(x):
    if x == 500:
        raise ValueError("item %d" % x)
    return x


def args_of(*args):
    """The arguments a starmap function got, each with its type (floats by their bits)."""
    import struct
    return tuple((type(a).__name__, struct.pack("<d", a) if type(a) is float else a)
                 for a in args)


class Text(str):
    """A str subclass (pickled, never packed)."""


def typed(x):
    """The value with its type's name (what a worker was given)."""
    return (type(x).__name__, x)


def pair_of(x):
    return (x, x * 2)
