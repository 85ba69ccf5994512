"""The remote engine: answers a scrub with CheckStream calls spread over one or more servers.

Each target gets several streams (separate connections, so a target that is
several ``serve --workers`` processes behind one port gets all of them busy).
Batches wait in one shared queue, so a fast stream simply takes more of them.
Each stream keeps two batches in flight, so the server never waits for the
client.

Every answer carries the version of the data it read. A scrub must not mix
versions from one target, so when a target's data moved during the scrub,
the batches it answered at older versions are asked again until all of its
answers share its newest version.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from suppression.errors import SuppressionError
from suppression.lists import Version
from suppression.scrub.answers import Answers, Progress
from suppression.scrub.pool import WorkerError, pool_for
from suppression.scrub.shortcut import canonicalize
from suppression.server import grpc_message_limit
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

__all__ = ["RemoteEngine", "RemoteError"]

logger = logging.getLogger(__name__)

STREAMS_PER_TARGET = 8
_IN_FLIGHT_PER_STREAM = 2
_RECONCILE_ROUNDS = 3


class RemoteError(SuppressionError):
    """A server could not be reached, refused a batch, or its data kept changing."""


def _shorten(task: tuple[list[str], str]) -> list[str]:
    """:func:`canonicalize` in a worker process."""
    texts, region = task
    return canonicalize(texts, region)


@dataclass(slots=True)
class _Batch:
    start: int
    texts: list[str]
    target: str = ""
    version: str = ""
    answer: pb.CheckResponse | None = None


@dataclass(slots=True)
class _Target:
    address: str
    channels: list[grpc.Channel] = field(default_factory=list)
    stubs: list[Any] = field(default_factory=list)


def _rpc_message(address: str, exc: grpc.RpcError) -> str:
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    return f"server {address} answered {name}: {exc.details()}"


def _version_key(text: str) -> tuple[int, int, str]:
    try:
        parsed = Version.parse(text)
    except ValueError:
        return (0, 0, text)
    return (parsed.ms, parsed.seq, text)


class RemoteEngine:
    """Checks distinct phone strings over CheckStream against ``targets``."""

    def __init__(
        self,
        targets: Sequence[str],
        region: str,
        lists: Sequence[str],
        *,
        batch_size: int = 10_000,
        timeout: float = 10.0,
        progress: Progress | None = None,
        streams_per_target: int = STREAMS_PER_TARGET,
        processes: int = 1,
        expected_rows: int = 0,
    ) -> None:
        """Connect to every target and start the streams.

        Args:
            targets: ``host:port`` of each server.
            region: default region sent with every batch.
            lists: lists to check; empty means each server's default lists.
            batch_size: numbers per request; lowered to a server's maximum.
            timeout: seconds a server may take to answer one batch.
            progress: told how many strings each answered batch held.
            streams_per_target: concurrent streams (connections) per target.
            processes: processes that rewrite punctuated numbers before sending;
                0 means one per core, 1 means none.
            expected_rows: rough size of the job, to decide whether to fork.

        Raises:
            RemoteError: a target cannot be reached or is not ready.
            WorkerError: the worker processes could not be forked.
        """
        self._region = region
        self._lists = list(lists)
        self._timeout = timeout
        self._progress = progress
        self._batch_size = max(1, batch_size)
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._batches: list[_Batch] = []
        self._error: SuppressionError | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._calls: list[tuple[Any, dict[str, float], deque[_Batch]]] = []
        self._shortening: list[Future[list[str]]] = []
        self._shortened_count = 0
        self._shortened_changed = threading.Condition()
        # Forked before any channel exists (gRPC does not survive a fork after that).
        self._pool = pool_for(processes, expected_rows, name="scrub-shorten")
        self._targets: list[_Target] = []
        try:
            for address in targets:
                self._targets.append(self._connect(address, streams_per_target))
        except BaseException:  # a RemoteError, or a signal: stop the workers either way
            self.close()
            raise
        for target in self._targets:
            for stub in target.stubs:
                thread = threading.Thread(
                    target=self._run_stream,
                    args=(target.address, stub),
                    name=f"scrub-{target.address}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _connect(self, address: str, streams: int) -> _Target:
        limit = grpc_message_limit(self._batch_size)
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # Without this, channels to one address share one connection, and a
            # server of several processes behind one port would use only one.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        target = _Target(address)
        for _ in range(max(1, streams)):
            channel = grpc.insecure_channel(address, options=options)
            target.channels.append(channel)
            target.stubs.append(pb_grpc.SuppressionStub(channel))  # type: ignore[no-untyped-call]
        try:
            status = target.stubs[0].GetStatus(pb.GetStatusRequest(), timeout=self._timeout)
        except grpc.RpcError as exc:
            for channel in target.channels:
                channel.close()
            raise RemoteError(
                f"cannot reach server {address}: {_rpc_message(address, exc)}"
            ) from None
        if not status.ready:
            for channel in target.channels:
                channel.close()
            raise RemoteError(f"server {address} is still loading its data; retry shortly")
        if status.max_batch and status.max_batch < self._batch_size:
            logger.info("server %s takes at most %d numbers per batch", address, status.max_batch)
            self._batch_size = int(status.max_batch)
        return target

    # -- streaming ----------------------------------------------------------

    def submit(self, start: int, texts: list[str]) -> None:
        """Queue ``texts`` (strings ``start`` onwards) in batches for the streams.

        Raises:
            RemoteError: a server failed already.
            WorkerError: a worker process died.
        """
        if self._error is not None:
            raise self._error
        # The same shortcut the local engine takes, so both modes answer alike,
        # and the servers parse only what really needs parsing. It costs a few µs a
        # string, so a pool takes it off the process that reads the file.
        if self._pool is None:
            self._enqueue(start, canonicalize(texts, self._region))
            return
        shortening = self._pool.submit(_shorten, (texts, self._region))
        shortening.add_done_callback(functools.partial(self._shortened, start))
        self._shortening.append(shortening)

    def _shortened(self, start: int, shortening: Future[list[str]]) -> None:
        if not shortening.cancelled() and shortening.exception() is None:
            self._enqueue(start, shortening.result())
        with self._shortened_changed:
            self._shortened_count += 1
            self._shortened_changed.notify_all()

    def _enqueue(self, start: int, texts: list[str]) -> None:
        with self._lock:
            for offset in range(0, len(texts), self._batch_size):
                batch = _Batch(start + offset, texts[offset : offset + self._batch_size])
                self._batches.append(batch)
                self._queue.put(batch)

    def _requests(
        self, sent: deque[_Batch], slots: threading.Semaphore, clock: dict[str, float]
    ) -> Iterator[pb.CheckRequest]:
        while True:
            slots.acquire()
            batch = self._queue.get()
            if batch is None or self._error is not None:
                self._queue.put(None)  # let the other streams see the end too
                return
            if not sent:
                clock["answered"] = time.monotonic()  # the wait starts now, not when idle
            sent.append(batch)
            yield pb.CheckRequest(
                numbers=batch.texts,
                default_region=self._region,
                lists=self._lists,
                request_id=batch.start,
            )

    def _run_stream(self, address: str, stub: Any) -> None:
        sent: deque[_Batch] = deque()
        slots = threading.Semaphore(_IN_FLIGHT_PER_STREAM)
        clock = {"answered": time.monotonic()}
        try:
            call = stub.CheckStream(self._requests(sent, slots, clock))
            with self._lock:
                self._calls.append((call, clock, sent))
            for response in call:
                batch = sent.popleft()
                self._accept(batch, address, response)
                clock["answered"] = time.monotonic()
                slots.release()
        except grpc.RpcError as exc:
            if self._error is None:
                self._fail(RemoteError(_rpc_message(address, exc)))
        except RemoteError as exc:
            self._fail(exc)

    def _accept(self, batch: _Batch, address: str, response: pb.CheckResponse) -> None:
        if response.request_id != batch.start or len(response.verdicts) != len(batch.texts):
            raise RemoteError(
                f"server {address} answered batch {response.request_id} with "
                f"{len(response.verdicts)} verdicts for batch {batch.start} of "
                f"{len(batch.texts)} numbers"
            )
        batch.target, batch.version, batch.answer = address, response.version, response
        if self._progress is not None:
            self._progress(len(batch.texts))

    def _fail(self, error: SuppressionError) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
            calls = list(self._calls)
        for call, _clock, _sent in calls:
            call.cancel()
        self._queue.put(None)

    def _watch(self) -> None:
        """Fail the scrub when a stream has waited too long for an answer."""
        now = time.monotonic()
        with self._lock:
            calls = list(self._calls)
        for _call, clock, sent in calls:
            if sent and now - clock["answered"] > self._timeout:
                self._fail(RemoteError(f"no answer within {self._timeout:g} s (--timeout)"))
                return

    # -- finishing ----------------------------------------------------------

    def finish(self, total: int) -> Answers:
        """Wait for every batch, make each target's answers share one version, and return them.

        Raises:
            RemoteError: a server failed, or its data changed throughout every retry.
            WorkerError: a worker process died.
        """
        for shortening in self._shortening:
            try:
                shortening.result()
            except WorkerError as exc:
                self._fail(exc)
                break
        # A future reports its result before its callback has queued the batches.
        with self._shortened_changed:
            self._shortened_changed.wait_for(
                lambda: self._shortened_count == len(self._shortening) or self._error is not None
            )
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.2)
                self._watch()
        if self._error is not None:
            raise self._error
        missing = [batch.start for batch in self._batches if batch.answer is None]
        if missing:
            raise RemoteError(f"{len(missing)} batch(es) were never answered; run the scrub again")
        versions = self._reconcile()
        return self._collect(total, versions)

    def _reconcile(self) -> dict[str, str]:
        stubs = {target.address: target.stubs[0] for target in self._targets}
        for round_number in range(_RECONCILE_ROUNDS + 1):
            newest: dict[str, str] = {}
            for batch in self._batches:
                current = newest.get(batch.target)
                if current is None or _version_key(batch.version) > _version_key(current):
                    newest[batch.target] = batch.version
            behind = [b for b in self._batches if b.version != newest[b.target]]
            if not behind:
                return newest
            if round_number == _RECONCILE_ROUNDS:
                break
            logger.info(
                "data changed during the scrub; asking %d batch(es) again at the newest version",
                len(behind),
            )
            for batch in behind:
                request = pb.CheckRequest(
                    numbers=batch.texts,
                    default_region=self._region,
                    lists=self._lists,
                    request_id=batch.start,
                )
                try:
                    response = stubs[batch.target].Check(request, timeout=self._timeout)
                except grpc.RpcError as exc:
                    raise RemoteError(_rpc_message(batch.target, exc)) from None
                batch.version, batch.answer = response.version, response
        raise RemoteError(
            f"the data kept changing during the scrub ({_RECONCILE_ROUNDS} retries); "
            "run it again when fewer changes are arriving"
        )

    def _collect(self, total: int, versions: dict[str, str]) -> Answers:
        answers = Answers.empty(total)
        names: list[str] = []
        for batch in self._batches:
            answer = batch.answer
            assert answer is not None
            masks = np.fromiter(answer.matched, dtype=np.uint64, count=len(answer.matched))
            masks = _remap(masks, list(answer.list_names), names)
            answers.fill(
                batch.start,
                list(answer.verdicts),
                masks,
                dict(answer.invalid_reasons),
                list(answer.normalized),
            )
            answers.stale |= answer.stale
            answers.failed_closed |= answer.failed_closed
        answers.list_names = tuple(names)
        answers.versions = versions
        return answers

    def close(self) -> None:
        """Stop the streams and close every connection."""
        if self._error is None and any(thread.is_alive() for thread in self._threads):
            self._fail(RemoteError("scrub stopped"))
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for target in self._targets:
            for channel in target.channels:
                channel.close()
        self._targets = []


def _remap(masks: np.ndarray[Any, Any], names: list[str], table: list[str]) -> Any:
    """Re-express bitmasks over ``names`` as bitmasks over the shared ``table``.

    Targets may order their default lists differently; the summary needs one
    table. ``table`` grows with names it has not seen yet.
    """
    for name in names:
        if name not in table:
            table.append(name)
    if names == table[: len(names)]:
        return masks
    remapped = np.zeros_like(masks)
    one = np.uint64(1)
    for bit, name in enumerate(names):
        on = (masks >> np.uint64(bit)) & one
        remapped |= on << np.uint64(table.index(name))
    return remapped
