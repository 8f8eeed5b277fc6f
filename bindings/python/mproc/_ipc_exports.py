"""Names of the queue, pipe, sync and shared-memory parts (imported by the package)."""
from .synchronize import Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier
from .sharedctypes import Value, Array, RawValue, RawArray
from .queues import Queue, SimpleQueue, JoinableQueue
from .connection import Pipe
from . import connection, shared_memory, sharedctypes, synchronize, queues  # noqa: F401

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "Value", "Array", "RawValue", "RawArray", "Queue", "SimpleQueue", "JoinableQueue",
           "Pipe"]
