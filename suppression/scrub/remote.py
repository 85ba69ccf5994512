"""The remote engine: answers a scrub through :mod:`suppression.client`, spread over servers.

Each target gets several streams, each its own :class:`SuppressionClient` (a
connection each, so a target that is several ``serve --workers`` processes
behind one port gets all of them busy). Batches wait in one shared queue, so a
fast stream simply takes more of them. Each stream keeps two batches in
flight, so the server never waits for the client.

When a stream fails (its server is down, restarting, or sends no answer within
the timeout, after the client's own retries), the batches it held go back to
the queue, and the streams of the other targets answer them. The scrub fails
only when no stream is left, or when a server refuses a batch (an unknown list,
bad credentials): another target would refuse it too.

Every answer carries the version of the data it read. A scrub must not mix
versions from one target, so when a target's data moved during the scrub,
the batches it answered at older versions are asked again until all of its
answers share its newest version.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import cast

import grpc
import numpy as np

from suppression.client import (
    CheckResult,
    CheckStream,
    ClientConfig,
    ClientError,
    SuppressionClient,
    UnavailableError,
)
from suppression.errors import SuppressionError
from suppression.lists import Version
from suppression.scrub.answers import Answers, Progress
from suppression.scrub.fastpath import RawBlock, ScanLayout
from suppression.scrub.pool import WorkerError, pool_for
from suppression.scrub.remotescan import BlockToSend, scan_to_send
from suppression.scrub.shortcut import canonicalize
from suppression.wire import grpc_message_limit

__all__ = ["BlockAsked", "RemoteEngine", "RemoteError"]

logger = logging.getLogger(__name__)

STREAMS_PER_TARGET = 8
_IN_FLIGHT_PER_STREAM = 2
_RECONCILE_ROUNDS = 3
_WATCH_SECONDS = 0.2
VALUES_BATCH = 50_000
"""E.164 integers per request, at most (and at most a server's ``max_batch``): a server
answers them without parsing, so batches this size cost it little time, and each request
spared saves the scrub a few milliseconds of work per batch."""
_SERVER_FAILURES = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL})
"""Besides UNAVAILABLE and DEADLINE_EXCEEDED: a server that stops cancels its streams,
and a connection cut mid-message ends as INTERNAL. Another target may answer."""


class RemoteError(SuppressionError):
    """A server could not be reached, refused a batch, or its data kept changing."""


def _shorten(task: tuple[list[str], str]) -> list[str]:
    """:func:`canonicalize` in a worker process."""
    texts, region = task
    return canonicalize(texts, region)


@dataclass(slots=True)
class _Batch:
    start: int
    texts: list[str] | list[int]
    """Text phones, or E.164 integers (a block's numbers the fast path read)."""
    target: str = ""
    result: CheckResult | None = None
    retried: bool = False
    """The stream that first took it failed; another one answered it."""

    @property
    def version(self) -> str:
        return self.result.version if self.result is not None else ""


@dataclass(slots=True)
class BlockAsked:
    """A block handed to :meth:`RemoteEngine.scan`: its scan in a worker, then its batches."""

    future: Future[BlockToSend] | None = None
    scanned: BlockToSend | None = None
    batches: list[_Batch] = field(default_factory=list)
    queued: bool = False
    """Its batches are in the queue (set once the scan is done)."""


@dataclass(slots=True)
class _Stream:
    """One CheckStream to one target, and the batches it has taken and not yet answered."""

    address: str
    client: SuppressionClient
    sent: deque[_Batch] = field(default_factory=deque)
    answered_at: float = 0.0
    """When the stream last made progress; the wait for an answer starts there."""
    ended: bool = False
    """The stream takes no more batches (it failed, or the scrub is ending)."""
    timed_out: bool = False
    """The watchdog cancelled it: no answer within the timeout."""
    results: CheckStream | None = None


@dataclass(slots=True)
class _Target:
    address: str
    clients: list[SuppressionClient] = field(default_factory=list)


def _server_failed(exc: ClientError) -> bool:
    """True when the server failed, rather than refused the batch (which any would)."""
    return isinstance(exc, UnavailableError) or exc.code in _SERVER_FAILURES


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
        policy: tuple[str, int] | None = None,
    ) -> None:
        """Connect to every target and start the streams.

        Args:
            targets: ``host:port`` of each server.
            region: default region sent with every batch.
            lists: lists to check; empty means each server's default lists.
            batch_size: text numbers per request; lowered to a server's maximum. A
                block's E.164 integers go :data:`VALUES_BATCH` at a time (or this many,
                if more), up to that maximum.
            timeout: seconds a server may take to answer one batch; then its
                batches go to another stream, on another target if need be.
            progress: told how many strings each answered batch held.
            streams_per_target: concurrent streams (connections) per target.
            processes: processes that rewrite punctuated numbers before sending;
                0 means one per core, 1 means none.
            expected_rows: rough size of the job, to decide whether to fork.
            policy: the policy's name ("" the servers' default) and the instant (ms) to
                decide every batch for, sent as each request's policy fields; None
                sends none (a server with policies then decides at its own now).

        Raises:
            RemoteError: no target can be reached and is ready (one that cannot is
                left to the others, and named in the answers' ``failed_targets``).
            WorkerError: the worker processes could not be forked.
        """
        self._region = region
        self._lists = tuple(lists)
        self._policy_name, self._decide_at = policy if policy is not None else ("", 0)
        self._timeout = timeout
        self._progress = progress
        self._batch_size = max(1, batch_size)
        self._values_batch = max(self._batch_size, VALUES_BATCH)
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._batches: list[_Batch] = []
        self._answered = 0
        self._error: SuppressionError | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._streams: list[_Stream] = []
        self._live: dict[str, int] = {}
        """Streams per target that have not failed."""
        self._failed: dict[str, str] = {}
        """Targets that could not answer, and why."""
        self._retried_on: dict[str, int] = {}
        """Batches answered by a target after the stream that first took them failed."""
        self._ending = False
        self._answered_at = time.monotonic()
        """When any stream last had an answer."""
        self._shortening: deque[tuple[int, Future[list[str]], int]] = deque()
        """Per rewriting task: its first string, its future, and how many tasks up to it."""
        self._shortening_tasks = 0
        self._shortened_count = 0
        self._versions: dict[str, str] = {}
        """The newest version each target answered at."""
        self._first_versions: dict[str, str] = {}
        """The version of each target's first answers."""
        self._names: list[str] = []
        """The list names of every answer so far; bit j of a mask is ``_names[j]``."""
        self._shortened_changed = threading.Condition()
        self._decides = False
        """A target decides under a pre-dial policy when asked for none (its default one)."""
        # Forked before any channel exists (gRPC does not survive a fork after that).
        self._pool = pool_for(processes, expected_rows, name="scrub-shorten")
        self._targets: list[_Target] = []
        try:
            for address in targets:
                try:
                    self._targets.append(self._connect(address, streams_per_target))
                except RemoteError as exc:
                    # The others may answer for it; the scrub fails only if none can.
                    self._failed[address] = str(exc)
            if not self._targets:
                raise RemoteError(self._nobody_answers())
            for reason in self._failed.values():
                logger.warning("%s; its share goes to the other targets", reason)
        except BaseException:  # a RemoteError, or a signal: stop the workers either way
            self.close()
            raise
        for target in self._targets:
            self._live[target.address] = len(target.clients)
            for client in target.clients:
                stream = _Stream(target.address, client, answered_at=time.monotonic())
                stream.results = client.check_stream(
                    self._feed(stream),
                    in_flight=_IN_FLIGHT_PER_STREAM,
                    policy=self._policy_name,
                    decide_at=self._decide_at or None,
                )
                self._streams.append(stream)
        for stream in self._streams:
            thread = threading.Thread(
                target=self._run_stream,
                args=(stream,),
                name=f"scrub-{stream.address}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _connect(self, address: str, streams: int) -> _Target:
        config = ClientConfig(
            targets=(address,),
            timeout=self._timeout,
            region=self._region,
            lists=self._lists,
            max_message_bytes=grpc_message_limit(self._values_batch),
            # Without this, clients of one address share one connection, and a
            # server of several processes behind one port would use only one.
            channel_options=(("grpc.use_local_subchannel_pool", 1),),
        )
        probe = SuppressionClient(config)
        try:
            status = probe.status()
        except ClientError as exc:
            probe.close()
            raise RemoteError(f"cannot reach server {address}: {exc}") from None
        if not status.ready:
            probe.close()
            raise RemoteError(f"server {address} is still loading its data; retry shortly")
        if status.max_batch and status.max_batch < self._batch_size:
            logger.info("server %s takes at most %d numbers per batch", address, status.max_batch)
            self._batch_size = int(status.max_batch)
        if status.max_batch:
            self._values_batch = min(self._values_batch, int(status.max_batch))
        if not self._policy_name and not self._decide_at:
            # A server started with policies decides every check under its default one;
            # an empty batch tells, and the fast path (which writes no deferred rows) is off.
            try:
                self._decides |= probe.check(e164=()).policy_arrays is not None
            except ClientError as exc:
                if not _server_failed(exc):
                    # A refusal (an unknown list...): the batches meet it and say so.
                    self._decides = True
                else:
                    probe.close()
                    raise RemoteError(f"cannot reach server {address}: {exc}") from None
        # The others need not ask GetStatus again for the largest batch.
        others = dataclasses.replace(config, max_batch=status.max_batch or self._batch_size)
        clients = [probe] + [SuppressionClient(others) for _ in range(max(1, streams) - 1)]
        return _Target(address, clients)

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
        self._shortening_tasks += 1
        self._shortening.append((start, shortening, self._shortening_tasks))

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

    def scan(self, block: RawBlock, layout: ScanLayout) -> BlockAsked:
        """Scan ``block`` in a worker, then ask for its numbers, as integers where it can.

        Only when :attr:`reads_blocks` is true. The answers come from :meth:`take_block`.

        Raises:
            RemoteError: a server failed already.
            WorkerError: the pool is broken.
        """
        if self._error is not None:
            raise self._error
        asked = BlockAsked()
        task = (block.data, block.first_line, layout)
        if self._pool is None:
            self._ask(asked, scan_to_send(task))
            return asked
        asked.future = self._pool.submit(scan_to_send, task)
        asked.future.add_done_callback(functools.partial(self._block_scanned, asked))
        return asked

    def _block_scanned(self, asked: BlockAsked, future: Future[BlockToSend]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._ask(asked, future.result())

    def _ask(self, asked: BlockAsked, scanned: BlockToSend) -> None:
        """Queue a scanned block's numbers: its integers, then its texts."""
        values = scanned.values.tolist()
        texts = scanned.texts
        size, values_size = self._batch_size, self._values_batch
        with self._changed:
            asked.scanned = scanned
            for offset in range(0, len(values), values_size):
                asked.batches.append(_Batch(offset, values[offset : offset + values_size]))
            for offset in range(0, len(texts), size):
                asked.batches.append(_Batch(len(values) + offset, texts[offset : offset + size]))
            for batch in asked.batches:
                self._queue.put(batch)
            asked.queued = True
            self._changed.notify_all()

    def take_block(self, asked: BlockAsked) -> tuple[BlockToSend, Answers]:
        """Wait for the answers to a block's numbers (integers first), at one version per target.

        Raises:
            RemoteError: a server failed, answered under a pre-dial policy (which
                the fast path does not write), or its data changed throughout every retry.
            WorkerError: a worker process died.
        """
        # The future's callback holds ``asked``: dropped here, or the cycle would keep every
        # block's scan until the end (the scrub pauses the cyclic garbage collector).
        future, asked.future = asked.future, None
        if future is not None:
            try:
                future.result()
            except WorkerError as exc:
                self._fail(exc)
                raise
        with self._changed:
            self._answered_at = time.monotonic()  # reading the input was no wait for answers
            self._wait(
                lambda: not asked.queued or any(batch.result is None for batch in asked.batches)
            )
        if self._error is not None:
            raise self._error
        scanned = asked.scanned
        assert scanned is not None
        for batch in asked.batches:
            assert batch.result is not None
            if batch.result.policy_arrays is not None:
                raise RemoteError(
                    f"server {batch.target} started deciding under a pre-dial policy during "
                    "the scrub; scrub the file again"
                )
        self._note_versions(self._reconcile(asked.batches))
        return scanned, self._collect(0, scanned.size, asked.batches)

    @property
    def reads_blocks(self) -> bool:
        """True when the scrub may hand blocks to :meth:`scan`.

        Not under a policy, asked or one a server applies by default: the fast path
        writes no deferred rows.
        """
        return not self._policy_name and not self._decide_at and not self._decides

    def _feed(self, stream: _Stream) -> Iterator[list[str] | list[int]]:
        """The batches one stream sends; read by the client in gRPC's request thread.

        It ends when :meth:`finish` has every answer (or the scrub fails), not when
        the input ends: until then, a failed stream's batches may come back.
        """
        while True:
            batch = self._queue.get()
            with self._lock:
                if batch is None or stream.ended or self._error is not None:
                    self._queue.put(batch)  # the end, or a batch, for the other streams
                    return
                if not stream.sent:
                    stream.answered_at = time.monotonic()  # the wait starts now, not when idle
                stream.sent.append(batch)
            yield batch.texts

    def _run_stream(self, stream: _Stream) -> None:
        assert stream.results is not None
        try:
            for result in stream.results:
                with self._lock:
                    batch = stream.sent.popleft()
                self._accept(batch, stream.address, result)
                with self._changed:
                    stream.answered_at = self._answered_at = time.monotonic()
                    self._answered += 1
                    self._changed.notify_all()
        except ClientError as exc:
            self._stream_failed(stream, exc)
        except RemoteError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug: fail the scrub rather than wait for this stream
            self._fail(RemoteError(f"internal error in a stream to {stream.address}: {exc!r}"))
            raise

    def _stream_failed(self, stream: _Stream, exc: ClientError) -> None:
        """Give a failed stream's batches to the others, or fail the scrub if none is left."""
        if not stream.timed_out and not _server_failed(exc):
            if self._error is None:  # a refusal: any target would refuse the batch too
                self._fail(RemoteError(str(exc)))
            return
        reason = (
            f"server {stream.address} sent no answer within {self._timeout:g} s (--timeout)"
            if stream.timed_out
            else str(exc)
        )
        error = None
        with self._changed:
            if self._error is not None or (self._ending and not stream.sent):
                return
            stream.ended = True
            for batch in stream.sent:
                batch.retried = True
                self._queue.put(batch)
            if stream.sent:
                # Batches handed back are fresh work, not a silence: the other streams get
                # the timeout to take them, or a watch could take them for hung connections.
                self._answered_at = time.monotonic()
            held = len(stream.sent)
            stream.sent.clear()
            self._live[stream.address] -= 1
            if not self._live[stream.address]:
                self._failed.setdefault(stream.address, reason)
                logger.warning("%s; its batches go to the other targets", reason)
            if not any(self._live.values()):
                error = RemoteError(self._nobody_answers())
            self._changed.notify_all()
        logger.debug("a stream to %s failed; %d batch(es) queued again", stream.address, held)
        if error is not None:
            self._fail(error)

    def _nobody_answers(self) -> str:
        if len(self._failed) == 1:
            return next(iter(self._failed.values()))
        reasons = "; ".join(self._failed.values())
        return f"no target can answer ({len(self._failed)} tried): {reasons}"

    def _accept(self, batch: _Batch, address: str, result: CheckResult) -> None:
        if len(result) != len(batch.texts):
            raise RemoteError(
                f"server {address} answered {len(result)} verdicts for batch "
                f"{batch.start} of {len(batch.texts)} numbers"
            )
        batch.target, batch.result = address, result
        if batch.retried:
            with self._lock:
                self._retried_on[address] = self._retried_on.get(address, 0) + 1
        if self._progress is not None:
            self._progress(len(batch.texts))

    def _fail(self, error: SuppressionError) -> None:
        with self._changed:
            if self._error is None:
                self._error = error
            streams = list(self._streams)
            self._changed.notify_all()
        for stream in streams:
            if stream.results is not None:
                stream.results.cancel()
        self._queue.put(None)

    def _watch(self) -> None:
        """Cancel the streams that have waited too long for an answer; others take their batches.

        When no stream had an answer within the timeout and none holds a batch,
        the batches wait in the queue for streams that do not take them (their
        connections hang): then every stream is cancelled.
        """
        now = time.monotonic()
        with self._lock:
            stalled = now - self._answered_at > self._timeout and not any(
                stream.sent for stream in self._streams
            )
            late = [
                stream
                for stream in self._streams
                if (stream.sent or stalled)
                and not stream.ended
                and not stream.timed_out
                and (stalled or now - stream.answered_at > self._timeout)
            ]
            for stream in late:
                stream.timed_out = True
        for stream in late:
            assert stream.results is not None
            stream.results.cancel()

    # -- finishing ----------------------------------------------------------

    def take(self, start: int, count: int) -> Answers:
        """Wait for strings ``start`` to ``start + count - 1``, at one version per target.

        Raises:
            RemoteError: a server failed, or its data changed throughout every retry.
            WorkerError: a worker process died.
        """
        end = start + count
        tasks = 0
        while self._shortening and self._shortening[0][0] < end:
            _, shortening, tasks = self._shortening.popleft()
            try:
                shortening.result()
            except WorkerError as exc:
                self._fail(exc)
                break
        # A future reports its result before its callback has queued the batches.
        with self._shortened_changed:
            self._shortened_changed.wait_for(
                lambda: self._shortened_count >= tasks or self._error is not None
            )
        with self._changed:
            self._answered_at = time.monotonic()  # reading the input was no wait for answers
            self._wait(
                lambda: any(batch.result is None for batch in self._batches if batch.start < end)
            )
            mine = [batch for batch in self._batches if batch.start < end]
            self._batches = [batch for batch in self._batches if batch.start >= end]
        if self._error is not None:
            raise self._error
        self._note_versions(self._reconcile(mine))
        return self._collect(start, count, mine)

    def _wait(self, waiting: Callable[[], bool]) -> None:
        """Wait (holding ``_changed``) while ``waiting()`` and no error, watching the streams."""
        while self._error is None and waiting():
            self._changed.wait(_WATCH_SECONDS)
            self._changed.release()
            try:
                self._watch()
            finally:
                self._changed.acquire()

    def _note_versions(self, versions: dict[str, str]) -> None:
        for address, version in versions.items():
            self._first_versions.setdefault(address, version)
            current = self._versions.get(address)
            if current is None or _version_key(version) > _version_key(current):
                self._versions[address] = version

    def fixed_versions(self) -> dict[str, str] | None:
        """None: a server's data moves with the change log."""
        return None

    def end(self) -> None:
        """Close the streams after the last :meth:`take`; :meth:`close` then only disconnects."""
        self._end_streams()

    def _end_streams(self) -> None:
        with self._lock:
            self._ending = True
            for stream in self._streams:
                stream.ended = True
        self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _reconcile(self, batches: list[_Batch]) -> dict[str, str]:
        clients = {target.address: target.clients[0] for target in self._targets}
        for round_number in range(_RECONCILE_ROUNDS + 1):
            newest: dict[str, str] = {}
            for batch in batches:
                current = newest.get(batch.target)
                if current is None or _version_key(batch.version) > _version_key(current):
                    newest[batch.target] = batch.version
            behind = [b for b in batches if b.version != newest[b.target]]
            if not behind:
                return newest
            if round_number == _RECONCILE_ROUNDS:
                break
            logger.info(
                "data changed during the scrub; asking %d batch(es) again at the newest version",
                len(behind),
            )
            for batch in behind:
                self._ask_again(batch, clients)
        raise RemoteError(
            f"the data kept changing during the scrub ({_RECONCILE_ROUNDS} retries); "
            "run it again when fewer changes are arriving"
        )

    def _ask_again(self, batch: _Batch, clients: dict[str, SuppressionClient]) -> None:
        """Check ``batch`` again on its target, or on another one if that target fails."""
        others = [address for address in clients if address != batch.target]
        for address in [batch.target, *others]:
            if address in self._failed:
                continue
            texts = batch.texts
            try:
                if texts and isinstance(texts[0], int):
                    batch.result = clients[address].check(
                        e164=texts,
                        policy=self._policy_name,
                        decide_at=self._decide_at or None,
                    )
                else:
                    batch.result = clients[address].check(
                        numbers=cast(list[str], texts),
                        policy=self._policy_name,
                        decide_at=self._decide_at or None,
                    )
            except ClientError as exc:
                if not _server_failed(exc):
                    raise RemoteError(str(exc)) from None
                self._failed[address] = str(exc)
                logger.warning("%s; its batches go to the other targets", exc)
                continue
            if address != batch.target:
                batch.target = address
                self._retried_on[address] = self._retried_on.get(address, 0) + 1
            return
        raise RemoteError(self._nobody_answers())

    def _collect(self, start: int, count: int, batches: list[_Batch]) -> Answers:
        answers = Answers.empty(count)
        names = self._names
        for batch in batches:
            result = batch.result
            assert result is not None
            masks = np.fromiter(result.masks, dtype=np.uint64, count=len(result.masks))
            masks = _remap(masks, list(result.list_names), names)
            answers.fill(
                batch.start - start,
                result.verdicts,
                masks,
                result.invalid_reasons,
                result.normalized,
            )
            answers.stale |= result.stale
            answers.failed_closed |= result.failed_closed
            arrays = result.policy_arrays
            if arrays is not None:
                if answers.policy and (arrays.policy, arrays.version) != (
                    answers.policy,
                    answers.policy_version,
                ):
                    raise RemoteError(
                        f"servers answered under policy {answers.policy} version "
                        f"{answers.policy_version} and {arrays.policy} version "
                        f"{arrays.version}: give them one policy file, or scrub when its "
                        "reload has reached every server"
                    )
                answers.policy, answers.policy_version = arrays.policy, arrays.version
                answers.fill_policy(
                    batch.start - start,
                    len(result),
                    arrays.earliest_ms,
                    arrays.rules,
                    tuple(arrays.rule_names),
                )
        answers.list_names = tuple(names)
        answers.versions = dict(self._versions)
        answers.first_versions = dict(self._first_versions)
        answers.retried_on = dict(self._retried_on)
        answers.failed_targets = dict(self._failed)
        return answers

    def close(self) -> None:
        """Stop the streams and close every connection."""
        if self._error is None and any(thread.is_alive() for thread in self._threads):
            self._fail(RemoteError("scrub stopped"))
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for target in self._targets:
            for client in target.clients:
                client.close()
        self._targets = []


def _remap(
    masks: np.ndarray[tuple[int], np.dtype[np.uint64]], names: list[str], table: list[str]
) -> np.ndarray[tuple[int], np.dtype[np.uint64]]:
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
