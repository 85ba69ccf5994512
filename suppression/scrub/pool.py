"""Forked worker processes for a scrub, shared by the local and the remote engine.

The workers are forked at once, from the calling thread, before the caller
starts any thread or opens any gRPC channel: they share the parent's memory
copy-on-write (the local engine's bitmaps) and inherit no lock that another
thread holds. Each worker has its own pipe, fed by one thread in the parent
that keeps one task in flight, so an idle worker takes the next task from
the one shared queue.

A worker never outlives its scrub, and never holds it up:

- It ignores SIGINT, SIGTERM and SIGHUP. The parent alone decides when to
  stop, so Ctrl-C on a terminal (which signals the whole process group)
  cannot kill a worker half way through a message. With
  ``ProcessPoolExecutor`` that left half a message in the result pipe, and
  its shutdown waited for the rest forever (2 runs in 8).
- On Linux it asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), so a SIGKILLed scrub takes its workers (about
  180 MB each) with it. Elsewhere, and as a fallback, it leaves when its pipe
  closes or its parent's pid changes, within half a second when idle.
- :meth:`WorkerPool.close` kills the workers with SIGKILL: they hold no file
  and no state worth saving, so stopping them needs nothing from them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from suppression.errors import SuppressionError
from suppression.scrub.interrupts import STOP_SIGNALS, signals_held

__all__ = ["POOL_THRESHOLD", "WORKER_DIED", "WorkerError", "WorkerPool", "pool_for"]

logger = logging.getLogger(__name__)

_A = TypeVar("_A")
_R = TypeVar("_R")

POOL_THRESHOLD = 20_000
"""Below this many rows a pool costs more to start than it saves."""
WORKER_DIED = (
    "a worker process died (killed, or out of memory?); run the scrub again, "
    "perhaps with fewer --processes"
)
_PR_SET_PDEATHSIG = 1
_PARENT_CHECK_SECONDS = 0.5
_IN_FLIGHT = 1
"""Tasks sent to a worker before its answer is read. More would deadlock on large messages:
the feeder blocked sending the next task (a 4 MiB block) into a full pipe while the worker
is blocked sending its answer into the other."""
_JOIN_SECONDS = 5.0
"""A bound on joining a feeder thread; they end at once when their worker is killed."""


class WorkerError(SuppressionError):
    """A worker process died, or a task failed in one."""


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when ``parent`` dies (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(0)


def _work(
    connection: Connection,
    parent: int,
    initializer: Callable[[], None] | None,
    inherited: list[Connection],
) -> None:
    """A worker's life: answer tasks from ``connection`` until it closes or the parent dies."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _die_with_parent(parent)
    for other in inherited:  # the parent's ends: a pipe must close when the parent dies
        other.close()
    if initializer is not None:
        initializer()
    while True:
        try:
            if not connection.poll(_PARENT_CHECK_SECONDS):
                if os.getppid() != parent:
                    return
                continue
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        function, argument = task
        try:
            answer: tuple[bool, Any] = (True, function(argument))
        except Exception as exc:  # a bug in a task; the parent fails the scrub with it
            # Only the type: the message may quote a phone number, and it reaches stderr.
            answer = (False, type(exc).__name__)
        try:
            connection.send(answer)
        except OSError:
            return


class WorkerPool:
    """Forked worker processes that run ``function(argument)`` tasks.

    Every future it returns completes: with the answer, or with a
    :class:`WorkerError` when a worker dies (the pool is then broken, and
    every later task fails too), or cancelled by :meth:`close`.
    """

    def __init__(
        self, processes: int, initializer: Callable[[], None] | None = None, name: str = "worker"
    ) -> None:
        """Fork ``processes`` workers now and start one feeder thread per worker.

        Call it from the main thread (the kernel's parent-death signal follows
        the thread that forked) before any other thread or gRPC channel exists.

        Args:
            processes: how many workers.
            initializer: run once in each worker before its first task; state it
                sets up there is inherited through fork, never pickled.
            name: prefix of the workers' and threads' names.

        Raises:
            WorkerError: a worker could not be forked.
        """
        context = multiprocessing.get_context("fork")
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[Any], Any], Any] | None]
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._broken = False
        self._closed = False
        self._workers: list[tuple[BaseProcess, Connection]] = []
        self._threads: list[threading.Thread] = []
        parent = os.getpid()
        try:
            with signals_held():
                for number in range(processes):
                    mine, theirs = context.Pipe()
                    inherited = [connection for _, connection in self._workers] + [mine]
                    process = context.Process(
                        target=_work,
                        args=(theirs, parent, initializer, inherited),
                        name=f"{name}-{number}",
                        daemon=True,
                    )
                    process.start()
                    theirs.close()
                    self._workers.append((process, mine))
        except OSError as exc:
            self.close()
            raise WorkerError(f"cannot start worker processes: {exc}") from None
        # A pool its owner never closed (an exception in the owner's constructor) must not
        # hold up the exit: multiprocessing's own exit handler would SIGTERM the workers,
        # which they ignore, and wait for them forever.
        atexit.register(self.close)
        for worker, connection in self._workers:
            thread = threading.Thread(
                target=self._feed, args=(worker, connection), name=f"{name}-feeder", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [process.pid for process, _ in self._workers if process.pid is not None]

    def submit(self, function: Callable[[_A], _R], argument: _A) -> Future[_R]:
        """Queue ``function(argument)`` for the next free worker.

        ``function`` must be importable by name (it is pickled by reference);
        ``argument`` and the answer are pickled.

        Raises:
            WorkerError: the pool is broken (a worker died) or closed.
        """
        future: Future[_R] = Future()
        with self._lock:
            if self._broken:
                raise WorkerError(WORKER_DIED)
            self._tasks.put((future, function, argument))
        return future

    def _feed(self, process: BaseProcess, connection: Connection) -> None:
        """Send tasks to one worker and settle their futures, until it stops."""
        in_flight: deque[Future[Any]] = deque()
        try:
            while True:
                while len(in_flight) < _IN_FLIGHT:
                    try:
                        task = self._tasks.get(block=not in_flight)
                    except queue.Empty:
                        break
                    if task is None:  # close(): no more tasks, and no more answers
                        self._tasks.put(None)  # for the other feeders
                        self._break(in_flight)
                        return
                    future, function, argument = task
                    if future.set_running_or_notify_cancel():
                        in_flight.append(future)
                        connection.send((function, argument))
                ready = wait([connection, process.sentinel])
                if connection not in ready:
                    raise EOFError  # the worker died with nothing more to say
                done, value = connection.recv()
                future = in_flight.popleft()
                if done:
                    future.set_result(value)
                else:
                    future.set_exception(WorkerError(f"a worker process failed: {value}"))
        except (EOFError, OSError):
            self._break(in_flight)

    def _break(self, in_flight: deque[Future[Any]]) -> None:
        """A worker died: fail its tasks and every queued one, and refuse new ones."""
        with self._lock:
            closing = self._closed
            self._broken = True
            pending = list(in_flight)
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is None:
                    self._tasks.put(None)
                    break
                pending.append(task[0])
        if not closing:  # the caller reports it, as a WorkerError
            logger.debug("a worker process died")
        for future in pending:
            if future.cancel():
                continue
            if not future.done():
                future.set_exception(WorkerError(WORKER_DIED))

    def close(self) -> None:
        """Kill the workers, stop the feeders and cancel unfinished tasks; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._broken = True
            self._tasks.put(None)
        atexit.unregister(self.close)
        for process, _ in self._workers:
            process.kill()
        for process, _ in self._workers:
            process.join()
        for thread in self._threads:
            thread.join(_JOIN_SECONDS)
        for _, connection in self._workers:
            connection.close()
        self._workers = []
        self._threads = []


def pool_for(
    processes: int,
    expected_rows: int,
    initializer: Callable[[], None] | None = None,
    name: str = "worker",
) -> WorkerPool | None:
    """A pool when the job is worth one, else None (the caller works in its own process).

    Args:
        processes: ``--processes``: 0 means one per core, 1 means no pool.
        expected_rows: rough size of the job; below :data:`POOL_THRESHOLD`, no pool.
        initializer: see :class:`WorkerPool`.
        name: see :class:`WorkerPool`.

    Raises:
        WorkerError: a worker could not be forked.
    """
    count = processes or os.cpu_count() or 1
    if count <= 1 or expected_rows < POOL_THRESHOLD:
        return None
    pool = WorkerPool(count, initializer, name)
    logger.debug("working with %d worker processes", count)
    return pool
