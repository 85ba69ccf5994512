"""Pre-fork worker supervision: fork, reap, restart within a budget, and a shared census.

A replica with ``--workers N`` is a parent process and N workers forked from it
that share the port. The parent never creates a gRPC object, since gRPC
forbids forking after one exists; it only supervises:

- :class:`WorkerPool` forks the workers, restarts one that dies (at most
  ``max_restarts`` within ``restart_window`` seconds, then it stops the whole
  replica with exit code 1, so the orchestrator sees a crash loop), forwards
  SIGTERM and SIGINT, and returns the replica's exit code. A worker that exits
  cleanly (exit code 0, or killed by SIGTERM or SIGINT) was asked to stop, not
  crashed: it is not restarted, and the rest of the replica stops with it.
- :class:`WorkerCensus` is a few bytes of shared memory, created before the
  first fork: one byte per worker slot, set by the worker while its health is
  SERVING and cleared by the parent when it reaps the worker. Every process
  reads "are all N workers ready?" without a system call.
- :class:`PoolHealthServicer` is the worker's health service: it answers
  NOT_SERVING while the census is short, so a replica below its configured
  capacity leaves the load balancer's rotation until it is whole again.
"""

from __future__ import annotations

import collections
import logging
import mmap
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

__all__ = ["PoolHealthServicer", "WorkerCensus", "WorkerPool", "describe_exit"]

logger = logging.getLogger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HANDLED_SIGNALS = (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP)
"""SIGHUP is forwarded to every worker (they re-read the policy file), never fatal here."""


class WorkerCensus:
    """Which worker slots are ready, in shared memory that every forked process sees.

    Create it in the parent before forking. Slot ``i`` is written only by the
    worker in slot ``i`` (ready or not) and by the parent after reaping that
    worker (not ready), so single-byte writes need no lock.
    """

    def __init__(self, workers: int) -> None:
        """Map ``workers`` shared bytes, all "not ready"."""
        if workers < 1:
            raise ValueError(f"a census needs at least one worker, not {workers}")
        self.workers = workers
        # An anonymous MAP_SHARED mapping: inherited by every child, never copied on write.
        self._slots = mmap.mmap(-1, workers)
        self._all_ready = b"\x01" * workers

    def mark(self, slot: int, ready: bool) -> None:
        """Record whether the worker in ``slot`` is ready."""
        self._slots[slot] = 1 if ready else 0

    def ready(self) -> int:
        """How many workers are ready."""
        return self._slots[: self.workers].count(1)

    def full(self) -> bool:
        """Whether every configured worker is ready: one compare of ``workers`` bytes."""
        return self._slots[: self.workers] == self._all_ready


class PoolHealthServicer(health.HealthServicer):
    """A worker's health service: its own status, but NOT_SERVING while the pool is short.

    ``set`` records this worker's own status, which also marks its census
    slot: ready while every service it has set is SERVING. ``Check`` reads
    the census on every call, so probes see a dead sibling at once; ``Watch``
    subscribers are told within ``poll_interval`` seconds by a daemon thread.
    Create it in the worker, after the fork.
    """

    def __init__(self, census: WorkerCensus, slot: int, poll_interval: float = 0.1) -> None:
        """Create the servicer for the worker in ``slot``; it starts NOT_SERVING."""
        super().__init__(experimental_non_blocking=True)
        self._census = census
        self._slot = slot
        self._own: dict[str, int] = {}
        self._full = census.full()
        self._stopped = threading.Event()
        self.set(health.OVERALL_HEALTH, _NOT_SERVING)
        self._poll_interval = poll_interval
        threading.Thread(target=self._watch_census, name="census-watch", daemon=True).start()

    def set(self, service: str, status: Any) -> None:
        """Set this worker's own status for ``service``; reported as NOT_SERVING while short."""
        with self._lock:
            if self._gracefully_shutting_down:
                return
            self._own[service] = status
            ready = all(own == _SERVING for own in self._own.values())
            self._census.mark(self._slot, ready)
            self._report_locked(only=service)

    def Check(  # noqa: N802 - the gRPC method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext | None
    ) -> health_pb2.HealthCheckResponse:
        """Answer the status, NOT_SERVING whenever a worker of the pool is not ready."""
        answer: health_pb2.HealthCheckResponse = super().Check(request, context)
        if answer.status == _SERVING and not self._census.full():
            return health_pb2.HealthCheckResponse(status=_NOT_SERVING)
        return answer

    def enter_graceful_shutdown(self) -> None:
        """Report NOT_SERVING for good, and stop watching the census."""
        self._stopped.set()
        super().enter_graceful_shutdown()

    def _report_locked(self, only: str | None = None) -> None:
        """Report every service's status again if the census changed, else only ``only``."""
        full = self._census.full()
        changed = full != self._full
        self._full = full
        for service, own in self._own.items():
            if changed or service == only:
                super().set(service, own if full or own != _SERVING else _NOT_SERVING)

    def _watch_census(self) -> None:
        while not self._stopped.wait(self._poll_interval):
            with self._lock:
                if self._gracefully_shutting_down:
                    return
                self._report_locked()


def describe_exit(status: int) -> str:
    """A wait status in words: ``exit code 3`` or ``killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _clean_exit(status: int) -> bool:
    """Whether a worker stopped because it was asked to, rather than crashed."""
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) in _STOP_SIGNALS
    return os.waitstatus_to_exitcode(status) == 0


class WorkerPool:
    """Forks ``workers`` processes that each run ``run_worker(slot)``, and keeps them running.

    Use it from the main thread of a process that holds no gRPC object::

        pool = WorkerPool(n, run_worker, census=census)
        pool.start()            # signal handlers, then n forks
        ...                     # e.g. serve the parent's /metrics (a thread is fine)
        exit_code = pool.supervise()

    Forking a process that runs threads copies only the forking thread; the
    parent's only other thread is expected to be the metrics HTTP server,
    which holds no lock a worker needs (logging's locks are reset at fork).
    """

    def __init__(
        self,
        workers: int,
        run_worker: Callable[[int], int],
        *,
        census: WorkerCensus | None = None,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        """Create the pool; nothing is forked until :meth:`start`.

        Args:
            workers: how many workers to keep running.
            run_worker: what a worker runs, given its slot (0 to ``workers - 1``);
                its return value is the worker's exit code.
            census: the shared census; the parent clears a slot when it reaps
                its worker. A new one when None.
            max_restarts: restarts allowed within ``restart_window`` seconds;
                the next death stops the replica with exit code 1.
            restart_window: seconds over which restarts are counted.
            stop_timeout: seconds workers get to stop after SIGTERM is forwarded,
                after which they are killed (SIGKILL).
        """
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, not {workers}")
        self.workers = workers
        self.census = census if census is not None else WorkerCensus(workers)
        self._run_worker = run_worker
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self._stop_timeout = stop_timeout
        self._pids: dict[int, int] = {}
        self._restart_times: collections.deque[float] = collections.deque()
        self._restarts = 0
        self._stopping = False
        self._stop_requested: signal.Signals | None = None
        self._hangups = 0
        self._stop_deadline: float | None = None
        self._exit_code = 0
        self._wake_read, self._wake_write = -1, -1
        self._previous_handlers: dict[int, Any] = {}

    @property
    def restarts(self) -> int:
        """Workers restarted since the pool started."""
        return self._restarts

    def pids(self) -> Mapping[int, int]:
        """The running workers' process IDs, by slot (a copy; safe from any thread)."""
        return dict(self._pids)

    def ready(self) -> int:
        """How many workers are ready, from the census."""
        return self.census.ready()

    def start(self) -> None:
        """Install the parent's signal handling, then fork every worker.

        Handlers come first, so that a SIGTERM arriving mid-start is forwarded
        rather than killing the parent and orphaning the workers.
        """
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        os.set_blocking(self._wake_read, False)
        signal.set_wakeup_fd(self._wake_write)
        for sig in _HANDLED_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        for slot in range(self.workers):
            self._fork(slot)
        logger.info("started %d workers: %s", self.workers, sorted(self._pids.values()))

    def supervise(self) -> int:
        """Reap and restart workers until the pool stops; returns the replica's exit code.

        The pool stops on SIGTERM or SIGINT (forwarded to every worker), when a
        worker exits cleanly, or when the restart budget is spent. Signal
        handling is restored before returning.
        """
        try:
            while self._pids:
                self._wait_for_event()
                if self._stop_requested is not None and not self._stopping:
                    logger.info(
                        "received %s; stopping %d workers",
                        self._stop_requested.name,
                        len(self._pids),
                    )
                    self._begin_stop(self._stop_requested)
                if self._hangups and not self._stopping:
                    self._hangups = 0
                    self._forward(signal.SIGHUP)
                self._reap()
                if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
                    self._kill_stragglers()
        finally:
            self._restore_signals()
        return self._exit_code

    def _fork(self, slot: int) -> None:
        self.census.mark(slot, False)
        # Blocked across the fork, a signal meant for the new worker waits for its own
        # handling instead of running a copy of the parent's handler in it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker(slot)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED_SIGNALS)
        self._pids[slot] = pid
        if self._stopping:
            os.kill(pid, signal.SIGTERM)

    def _become_worker(self, slot: int) -> None:
        code = 1
        try:
            # The worker sets up its own signal handling; until then, the defaults.
            signal.set_wakeup_fd(-1)
            for sig in _HANDLED_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED_SIGNALS)
            os.close(self._wake_read)
            os.close(self._wake_write)
            code = self._run_worker(slot)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            logger.exception("worker %d failed", slot)
        finally:
            logging.shutdown()
            os._exit(code)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Only note it: the main loop, woken through the wake-up fd, does the work.
        if signum in _STOP_SIGNALS and self._stop_requested is None:
            self._stop_requested = signal.Signals(signum)
        elif signum == signal.SIGHUP:
            self._hangups += 1

    def _forward(self, sig: signal.Signals) -> None:
        for pid in self._pids.values():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass  # already dead; reaped on the next round

    def _begin_stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + self._stop_timeout
        for pid in self._pids.values():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass  # already dead; reaped on the next round

    def _wait_for_event(self) -> None:
        timeout = None
        if self._stop_deadline is not None:
            timeout = max(0.0, self._stop_deadline - time.monotonic())
        select.select([self._wake_read], [], [], timeout)
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        # Each worker by its pid, never waitpid(-1): a status that is not ours stays put.
        for slot, pid in list(self._pids.items()):
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped by someone else, status lost: counted as a crash (exit code 255).
                reaped, status = pid, 0xFF00
            if reaped == 0:
                continue
            del self._pids[slot]
            self.census.mark(slot, False)
            self._after_exit(slot, pid, status)

    def _after_exit(self, slot: int, pid: int, status: int) -> None:
        how = describe_exit(status)
        if self._stopping:
            if not _clean_exit(status):
                logger.error("worker %d (pid %d) stopped: %s", slot, pid, how)
                self._exit_code = self._exit_code or 1
            return
        if _clean_exit(status):
            logger.warning(
                "worker %d (pid %d) stopped on its own (%s); stopping the replica, which "
                "cannot serve at its configured capacity without it",
                slot,
                pid,
                how,
            )
            self._begin_stop()
            return
        now = time.monotonic()
        while self._restart_times and now - self._restart_times[0] > self._restart_window:
            self._restart_times.popleft()
        if len(self._restart_times) >= self._max_restarts:
            logger.error(
                "worker %d (pid %d) died (%s) after %d restarts within %g s; stopping the "
                "replica (exit code 1); read the workers' logs above for the cause",
                slot,
                pid,
                how,
                len(self._restart_times),
                self._restart_window,
            )
            self._exit_code = 1
            self._begin_stop()
            return
        self._restart_times.append(now)
        self._restarts += 1
        self._fork(slot)
        logger.warning(
            "worker %d (pid %d) died (%s); restarted it as pid %d (%d of at most %d restarts "
            "within %g s); the replica reports NOT_SERVING until it is ready",
            slot,
            pid,
            how,
            self._pids[slot],
            len(self._restart_times),
            self._max_restarts,
            self._restart_window,
        )

    def _kill_stragglers(self) -> None:
        for slot, pid in self._pids.items():
            logger.error(
                "worker %d (pid %d) did not stop within %g s of being asked to; killing it",
                slot,
                pid,
                self._stop_timeout,
            )
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._exit_code = self._exit_code or 1
        self._stop_deadline = None  # SIGKILL cannot be ignored: wait for the reaping alone

    def _restore_signals(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read, self._wake_write = -1, -1
