"""Queue, SimpleQueue, JoinableQueue: pickled objects through mproc's shared-memory queues.
Shared with children made by fork by inheritance; pickled (forkserver children, pool
initargs) as the queue's name, which the other process opens while this one holds the queue.
Large buffers (numpy arrays, bytearray ...) travel out of band (_oob.py); a message too large
for the queue's ring goes to shared memory of its own, so put() never waits for a reader
(only for a free slot when maxsize is set)."""
import queue as _queue
import weakref

from . import _core
from . import _mproc
from . import _oob

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]

_loads = _oob.loads


def _open(cls, name):
    q = cls.__new__(cls)
    q._h = _mproc.mproc_queue_open(name)
    q._closed = False
    return q


class Queue:
    _kind = 0

    def __init__(self, maxsize=0, *, ctx=None):
        self._h = _mproc.py_queue_new(self._kind, maxsize)
        self._closed = False

    def __reduce__(self):
        return _open, (type(self), _mproc.mproc_queue_name(self._h))

    def _check_closed(self):
        if self._closed:
            raise ValueError("Queue %r is closed" % self)

    def put(self, obj, block=True, timeout=None):
        self._check_closed()
        t = -1.0 if block and timeout is None else (0.0 if not block else max(0.0, timeout))
        parts = _oob.dumps_parts(obj)
        try:
            if len(parts) == 1:
                _mproc.py_queue_put(self._h, parts[0], t)
            else:  # header, pickle and buffers copied once, straight into shared memory
                _mproc.py_queue_putv(self._h, parts, t)
        except _core.TimeoutError:
            raise _queue.Full from None
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.ECLOSED:
                raise ValueError("Queue is closed") from None
            raise

    def get(self, block=True, timeout=None):
        self._check_closed()
        t = -1.0 if block and timeout is None else (0.0 if not block else max(0.0, timeout))
        try:
            # A large message comes as a view of its own memory (for one larger than the ring,
            # its shared memory): the arrays loads() makes are views of it.
            data = _mproc.py_queue_get_msg(self._h, t, _oob.THRESHOLD)
        except _core.TimeoutError:
            raise _queue.Empty from None
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.ECLOSED:
                raise ValueError("Queue is closed") from None
            raise
        return _loads(data)

    @property
    def _reader(self):
        # The standard Queue's read end, as concurrent.futures uses a context's SimpleQueue:
        # connection.wait() on it, then recv().
        r = self.__dict__.get("_reader_view")
        if r is None:
            r = self.__dict__["_reader_view"] = _ReaderView(self)
        return r

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        return _mproc.mproc_queue_qsize(self._h)

    def empty(self):
        return bool(_mproc.mproc_queue_empty(self._h))

    def full(self):
        return bool(_mproc.mproc_queue_full(self._h))

    def close(self):
        """Close this process's end (as multiprocessing: later calls here raise ValueError)."""
        self._closed = True

    def join_thread(self):
        pass

    def cancel_join_thread(self):
        pass

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and _mproc is not None:
            try:
                _mproc.mproc_queue_free(h)
            except Exception:
                pass


class _ReaderView:
    """A Connection-like read end of a queue for a single reader that polls it (as
    concurrent.futures reads its result queue): fileno() is readable while a message waits.

    The queue's fd (mproc_queue_fileno) is drained only by a get that finds the queue empty, so
    after each message recv() tries one more get without waiting: empty, the fd is drained and
    truthful again; a message, it is kept for the next recv() and the fd stays readable (nothing
    drained it). Mixing recv() with the queue's own get() on the same queue is not supported."""

    def __init__(self, q):
        self._qref = weakref.ref(q)  # the queue keeps its view: no cycle, its __del__ frees it
        self._next = []

    @property
    def _q(self):
        q = self._qref()
        if q is None:
            raise ValueError("the queue of this reader is gone")
        return q

    def fileno(self):
        return _mproc.mproc_queue_fileno(self._q._h)

    def poll(self, timeout=0.0):
        if self._next:
            return True
        import select
        return bool(select.select([self.fileno()], [], [], timeout)[0]) and not self._q.empty()

    def recv(self):
        obj = self._next.pop() if self._next else self._q.get()
        try:
            self._next.append(Queue.get(self._q, False))
        except _queue.Empty:
            pass
        return obj


class SimpleQueue(Queue):
    _kind = 1

    def __init__(self, *, ctx=None):
        super().__init__(0)

    def get(self):
        return super().get(True)

    def put(self, obj):
        return super().put(obj, True)


class JoinableQueue(Queue):
    _kind = 2

    def task_done(self):
        try:
            _mproc.mproc_queue_task_done(self._h)
        except ValueError:
            raise ValueError("task_done() called too many times") from None

    def join(self):
        _mproc.py_queue_join(self._h, -1.0)
