"""Follows the change-log stream with blocking XREAD and applies each read as one batch.

Every replica runs one :class:`ChangeLogFollower`. Its version is the ID of
the last stream entry it applied, so replicas that reach the same ID hold
the same data. Entries it cannot apply go to the dead-letter stream with the
reason; the follower never stops for them. See docs/changelog-format.md.

Gaps: every read is pipelined with a small script that returns the stream's
:class:`~suppression.changelog.streaminfo.StreamInfo` in the same round trip.
If entries after our position may have been removed, the follower stops
applying, reports that it needs a resync and waits for a snapshot at or past
the gap in the data directory.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from suppression.changelog.planning import DeadLetter, RawEntry, plan_batch
from suppression.changelog.streaminfo import INFO_SCRIPT, StreamInfo, parse_info
from suppression.entries import field_text
from suppression.errors import SnapshotError, VersionError
from suppression.lists import ListView, Op, SuppressionLists, Version
from suppression.snapshot import find_newest, read_snapshot

__all__ = ["ChangeLogFollower", "FollowerState"]

logger = logging.getLogger(__name__)

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 5.0
_RESYNC_POLL = 0.25
_REMEMBERED_DEAD = 10_000


@dataclass(frozen=True, slots=True)
class FollowerState:
    """What the follower knows about its position, for metrics and health."""

    connected: bool
    """Redis reachable right now."""
    last_applied_id: str
    """Stream ID of the last applied entry ("0-0" if none)."""
    lag_entries: int
    """Entries in the stream after last_applied_id (best known)."""
    lag_seconds: float
    """Now minus the time of the oldest unapplied entry (0.0 when caught up)."""
    staleness_seconds: float
    """Seconds since the follower last confirmed it was caught up."""
    stale: bool
    """staleness_seconds > --max-staleness."""
    needs_resync: bool
    """Entries were trimmed away before being applied (NOT_SERVING)."""
    applied_by_op: Mapping[str, int]
    """Cumulative numbers applied by op (add, remove, add_range, remove_range)."""
    dead_letters: int
    """Cumulative entries sent to the dead-letter stream."""
    snapshot_age_seconds: float | None
    """Age of the newest snapshot written or loaded."""


class ChangeLogFollower:
    """A thread that keeps one :class:`SuppressionLists` in step with the stream."""

    def __init__(
        self,
        lists: SuppressionLists,
        client: redis.Redis,
        *,
        stream: str,
        dead_letter_stream: str,
        max_staleness: float,
        data_dir: Path | None = None,
        snapshot_created_at: float | None = None,
        block_ms: int = 500,
        count: int = 200,
    ) -> None:
        """Create a follower; :meth:`start` starts it.

        Args:
            lists: the lists to keep up to date; their version is the position.
            client: a Redis client whose socket timeout exceeds ``block_ms``.
            stream: the change-log stream key.
            dead_letter_stream: where unappliable entries go.
            max_staleness: seconds without confirming it is caught up before
                the data counts as stale.
            data_dir: where newer snapshots appear when a resync is needed.
            snapshot_created_at: creation time of the snapshot ``lists`` came
                from; the data counts as that old until the first catch-up.
            block_ms: how long one XREAD blocks.
            count: the most entries one XREAD returns (and one batch applies).
        """
        self._lists = lists
        self._client = client
        self._stream = stream
        self._dead_stream = dead_letter_stream
        self._max_staleness = max_staleness
        self._data_dir = data_dir
        self._block_ms = block_ms
        self._count = count
        self._stop = threading.Event()
        self._caught_up_once = threading.Event()
        self._applied = threading.Condition()
        self._thread: threading.Thread | None = None
        now = time.time()
        self._confirmed_at = snapshot_created_at if snapshot_created_at is not None else now
        self._snapshot_created_at = snapshot_created_at
        self._connected = False
        self._needs_resync = False
        self._resync_floor = Version()
        self._lag_entries = 0
        self._oldest_unapplied_ms: int | None = None
        self._ordinal_base: int | None = None
        self._applied_since_base = 0
        self._numbers_by_op: dict[str, int] = {op.value: 0 for op in Op}
        self._dead_letters = 0
        self._dead_reasons: OrderedDict[str, str] = OrderedDict()

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        """Start following in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="changelog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following; interrupts a blocked XREAD by closing the connection."""
        self._stop.set()
        self._client.connection_pool.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._applied:
            self._applied.notify_all()

    # -- questions ----------------------------------------------------------

    @property
    def position(self) -> Version:
        """The ID of the last applied entry."""
        return self._lists.version

    @property
    def needs_resync(self) -> bool:
        """Whether entries were trimmed away before being applied: data known to be missing."""
        return self._needs_resync

    def staleness_seconds(self) -> float:
        """Seconds since the follower last confirmed it had read the whole stream."""
        return max(0.0, time.time() - self._confirmed_at)

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the follower first confirms it has read the whole stream."""
        return self._caught_up_once.wait(timeout)

    def wait_applied(self, version: Version, timeout: float) -> bool:
        """Wait until the data reaches ``version``; False on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while self._lists.version < version:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._applied.wait(remaining)
        return True

    def dead_letter_reason(self, entry_id: str) -> str | None:
        """Why a recent entry went to the dead-letter stream, or None if it was applied."""
        return self._dead_reasons.get(entry_id)

    def note_snapshot(self, created_at: float) -> None:
        """Record that a snapshot was written (for ``snapshot_age_seconds``)."""
        if self._snapshot_created_at is None or created_at > self._snapshot_created_at:
            self._snapshot_created_at = created_at

    def state(self) -> FollowerState:
        """A consistent-enough reading of the follower, cheap enough for every scrape."""
        now = time.time()
        staleness = max(0.0, now - self._confirmed_at)
        oldest = self._oldest_unapplied_ms
        created = self._snapshot_created_at
        return FollowerState(
            connected=self._connected,
            last_applied_id=str(self._lists.version),
            lag_entries=self._lag_entries,
            lag_seconds=max(0.0, now - oldest / 1000) if oldest is not None else 0.0,
            staleness_seconds=staleness,
            stale=staleness > self._max_staleness,
            needs_resync=self._needs_resync,
            applied_by_op=dict(self._numbers_by_op),
            dead_letters=self._dead_letters,
            snapshot_age_seconds=max(0.0, now - created) if created is not None else None,
        )

    # -- the loop -----------------------------------------------------------

    def _run(self) -> None:
        delay = _MIN_BACKOFF
        reported = False
        while not self._stop.is_set():
            try:
                if self._needs_resync:
                    self._try_resync()
                    self._stop.wait(_RESYNC_POLL)
                    continue
                self._step()
                if not self._connected:
                    logger.info("following change log %s at %s", self._stream, self.position)
                self._connected = True
                reported = False
                delay = _MIN_BACKOFF
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if self._stop.is_set():
                    break
                if not reported:
                    # Once per outage, including an outage that began before the first read.
                    logger.warning(
                        "change log %s unreachable (%s); answering from data at %s, retrying",
                        self._stream,
                        exc,
                        self._lists.version,
                    )
                    reported = True
                self._connected = False
                delay = self._back_off(delay)
            except Exception:  # the follower must outlive any surprise; say it loudly
                if self._stop.is_set():
                    break  # stop() closed the connection under a blocked read
                logger.exception("change-log follower error; retrying in about %.1f s", delay)
                delay = self._back_off(delay)

    def _back_off(self, delay: float) -> float:
        """Wait about ``delay`` seconds, jittered so that replicas do not reconnect in step."""
        self._stop.wait(random.uniform(delay / 2, delay))
        return min(delay * 2, _MAX_BACKOFF)

    def _step(self) -> None:
        position = self._lists.version
        pipe = self._client.pipeline(transaction=False)
        pipe.xread({self._stream: str(position)}, count=self._count, block=self._block_ms)
        # EVAL with the text, not a registered script: redis-py would send SCRIPT EXISTS
        # before every pipeline, one more round trip; Redis caches the compiled script.
        pipe.eval(INFO_SCRIPT, 1, self._stream)
        reply, info_reply = pipe.execute()
        info = parse_info(info_reply)
        if info.missing_after(position):
            self._start_resync(position, info)
            return
        entries: list[RawEntry] = reply[0][1] if reply else []
        if entries:
            self._oldest_unapplied_ms = Version.parse(field_text(entries[0][0])).ms
            self._apply(entries)
        self._update_lag(info)

    def _apply(self, entries: Sequence[RawEntry]) -> None:
        plan = plan_batch(entries, self._lists.view.infos)
        if plan.dead:
            self._dead_letter(plan.dead)
        try:
            self._lists.apply(plan.changes, version=Version.parse(plan.last_id))
        except VersionError:
            logger.warning("skipping a read that ends at %s: data is already newer", plan.last_id)
            return
        for op, count in plan.numbers_by_op.items():
            self._numbers_by_op[op] = self._numbers_by_op.get(op, 0) + count
        self._applied_since_base += len(entries)
        with self._applied:
            self._applied.notify_all()

    def _dead_letter(self, dead: Sequence[DeadLetter]) -> None:
        """Copy dead entries to the dead-letter stream under their own IDs.

        Every replica sees the same dead entries in the same order; the first
        to write one wins and the others get "ID smaller than top item", so
        each dead entry appears once however many replicas run.
        """
        for letter in dead:
            fields: dict[bytes, bytes | str] = dict(letter.fields)
            fields[b"dl_reason"] = letter.reason
            fields[b"dl_stream"] = self._stream
            try:
                self._client.xadd(self._dead_stream, fields, id=letter.entry_id)  # type: ignore[arg-type]
            except redis.ResponseError as exc:
                if "equal or smaller" not in str(exc):
                    logger.error("cannot write dead letter %s: %s", letter.entry_id, exc)
        for letter in dead:
            self._dead_letters += 1
            self._dead_reasons[letter.entry_id] = letter.reason
            while len(self._dead_reasons) > _REMEMBERED_DEAD:
                self._dead_reasons.popitem(last=False)
            logger.warning(
                "change-log entry %s sent to %s: %s",
                letter.entry_id,
                self._dead_stream,
                letter.reason,
            )

    def _update_lag(self, info: StreamInfo) -> None:
        position = self._lists.version
        if not info.exists or info.last_generated <= position:
            self._confirmed_at = time.time()
            self._lag_entries = 0
            self._oldest_unapplied_ms = None
            self._ordinal_base = info.entries_added
            self._applied_since_base = 0
            self._caught_up_once.set()
            return
        self._oldest_unapplied_ms = position.ms if position.ms else info.first_recorded.ms
        if self._ordinal_base is None:
            self._lag_entries = info.length  # an upper bound until the first catch-up
        else:
            done = self._ordinal_base + self._applied_since_base
            self._lag_entries = max(0, info.entries_added - done)

    # -- resync -------------------------------------------------------------

    def _start_resync(self, position: Version, info: StreamInfo) -> None:
        self._needs_resync = True
        self._resync_floor = max(info.first_recorded, info.max_deleted)
        where = self._data_dir if self._data_dir is not None else "--data-dir (not set)"
        logger.error(
            "change log %s no longer holds the entries after %s (it starts at %s): "
            "not serving until a snapshot at %s or later appears in %s "
            "(run suppression-loader compact)",
            self._stream,
            position,
            info.first_recorded,
            self._resync_floor,
            where,
        )

    def _try_resync(self) -> None:
        if self._data_dir is None:
            return
        newest = find_newest(self._data_dir)
        if newest is None:
            return
        try:
            snapshot = read_snapshot(newest)
        except SnapshotError as exc:
            logger.warning("cannot resync from %s yet: %s", newest, exc)
            return
        if snapshot.version < self._resync_floor or snapshot.version <= self._lists.version:
            return
        self._lists.replace(ListView(snapshot.version, snapshot.bitmaps, snapshot.infos, ()))
        self.note_snapshot(snapshot.created_at)
        self._needs_resync = False
        self._ordinal_base = None
        logger.info("resynchronized from snapshot %s at version %s", newest, snapshot.version)
        with self._applied:
            self._applied.notify_all()
