"""The scrub's worker pool with real forked processes: answers, deaths, signals, clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import CancelledError, Future

import pytest

from suppression.scrub.pool import POOL_THRESHOLD, WorkerError, WorkerPool, pool_for
from tests.conftest import REPO, wait_for
from tests.processes import alive

_greeting = ""


def _set_greeting(text: str) -> None:
    global _greeting
    _greeting = text


def greet(name: str) -> tuple[str, int]:
    return f"{_greeting} {name}", os.getpid()


def fail(text: str) -> None:
    raise ValueError(text)


def block(_: object) -> None:
    threading.Event().wait()  # until killed


def test_tasks_run_in_the_workers_with_state_from_the_initializer() -> None:
    pool = WorkerPool(2, lambda: _set_greeting("hello"))
    pids = pool.pids
    try:
        futures = [pool.submit(greet, str(n)) for n in range(40)]
        answers = [future.result() for future in futures]
        assert [text for text, _ in answers] == [f"hello {n}" for n in range(40)]
        assert {pid for _, pid in answers} <= set(pids)
        assert os.getpid() not in pids
    finally:
        pool.close()
    assert not any(alive(pid) for pid in pids)


def test_no_pool_for_small_jobs_or_one_process() -> None:
    assert pool_for(1, 10 * POOL_THRESHOLD) is None
    assert pool_for(2, POOL_THRESHOLD - 1) is None


def test_a_failing_task_fails_its_future_with_a_one_line_error() -> None:
    pool = WorkerPool(2)
    try:
        with pytest.raises(WorkerError) as failed:
            pool.submit(fail, "+12125550123").result()
        assert str(failed.value) == "a worker process failed: ValueError"  # never a number
        assert pool.submit(greet, "again").result()[0] == " again"
    finally:
        pool.close()


def test_a_dead_worker_fails_the_pool() -> None:
    pool = WorkerPool(2)
    try:
        running = pool.submit(block, None)
        wait_for(running.running, 10, "the task to start")
        for pid in pool.pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="a worker process died"):
            running.result(timeout=30)
        with pytest.raises(WorkerError, match="a worker process died"):
            pool.submit(greet, "late").result(timeout=30)
    finally:
        pool.close()


def test_workers_ignore_ctrl_c_sent_to_the_process_group() -> None:
    pool = WorkerPool(2)
    try:
        for pid in pool.pids:
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
        answers = [pool.submit(greet, str(n)).result(timeout=30) for n in range(20)]
        assert len(answers) == 20
        assert all(alive(pid) for pid in pool.pids)
    finally:
        pool.close()


def test_close_kills_busy_workers_and_settles_every_future() -> None:
    pool = WorkerPool(2)
    pids = pool.pids
    futures: list[Future[None]] = [pool.submit(block, None) for _ in range(6)]
    # One task in flight per worker.
    wait_for(lambda: sum(f.running() for f in futures) == 2, 10, "both workers to be busy")
    pool.close()
    for future in futures:
        assert future.done()
        with pytest.raises((WorkerError, CancelledError)):
            future.result()
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(WorkerError):
        pool.submit(greet, "closed")
    pool.close()  # twice is fine


PARENT = """
import sys, threading
from suppression.scrub.pool import WorkerPool
pool = WorkerPool(2)
print(*pool.pids, flush=True)
threading.Event().wait()
"""


def test_workers_die_with_a_killed_parent() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=REPO
    ) as parent:
        try:
            assert parent.stdout is not None
            pids = [int(pid) for pid in parent.stdout.readline().split()]
            assert len(pids) == 2 and all(alive(pid) for pid in pids)
        finally:
            parent.kill()
            parent.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the workers to die")
