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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from suppression.changelog.epoch import mark_lost
from suppression.changelog.planning import (
    LOSS_KINDS,
    RESET,
    REWOUND,
    TRIMMED,
    DeadLetter,
    RawEntry,
    applied_entry_gone,
    counter_ahead,
    follow_on,
    lost_log,
    plan_batch,
)
from suppression.changelog.streaminfo import (
    INFO_SCRIPT,
    STAMP_SCRIPT,
    EntryStamp,
    StreamInfo,
    meta_key,
    parse_info,
    parse_stamp,
)
from suppression.entries import field_text
from suppression.errors import SnapshotError, VersionError
from suppression.lists import ListView, LogPosition, Op, SuppressionLists, Version
from suppression.redisconn import PrimaryWatch
from suppression.snapshot import find_newest, read_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["ArchiveSink", "ChangeLogFollower", "FollowerState"]

logger = logging.getLogger(__name__)


_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 5.0
_RESYNC_POLL = 0.25
_REMEMBERED_DEAD = 10_000


class ArchiveSink(Protocol):
    """Where applied changes are kept (the change archive, ``suppression.archive``)."""

    def append(self, entries: Sequence[RawEntry], before: ListView) -> None:
        """Keep entries about to be applied to ``before``; raising stops them being applied."""

    def rebase(self, view: ListView, reason: str) -> None:
        """The data jumped to ``view`` (a resync): answers restart from it."""


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
    losses: Mapping[str, int]
    """Cumulative times changes were found missing, by kind: trimmed, reset, rewound."""
    position: str = ""
    attempts_complete: bool = True
    """Attempt caps count every attempt of their window (the replica fills this in)."""
    """Where the data stands in the log: epoch prefix and sequence number."""


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
        on_loss: Callable[[], None] | None = None,
        block_ms: int = 500,
        count: int = 200,
        snapshot_key: SnapshotKey | None = None,
        recover_rewound: bool = False,
        archive: ArchiveSink | None = None,
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
            on_loss: called once when the log is found reset or rewound, while
                this replica still holds changes the log lost (to save them).
            block_ms: how long one XREAD blocks.
            count: the most entries one XREAD returns (and one batch applies).
            snapshot_key: a snapshot to resync from must be signed with it.
            recover_rewound: when the log went backwards (a failover lost
                entries this replica applied), drop them: reload the newest
                snapshot the log still agrees with and replay. Right when every
                write waits for Redis replicas (``--min-replicas``), so that
                what a failover loses was never acknowledged; otherwise the
                follower saves its data and waits for an operator's reseed.
            archive: every batch is appended to it before it is applied, so an
                acknowledged change is always archived; an append that fails
                leaves the batch unapplied (the replica turns stale).
        """
        self._lists = lists
        self._client = client
        self._primary = PrimaryWatch(client)
        self._stream = stream
        self._dead_stream = dead_letter_stream
        self._max_staleness = max_staleness
        self._data_dir = data_dir
        self._on_loss = on_loss
        self._block_ms = block_ms
        self._count = count
        self._snapshot_key = snapshot_key
        self._recover_rewound = recover_rewound
        self._archive = archive
        self._stop = threading.Event()
        self._caught_up_once = threading.Event()
        self._applied = threading.Condition()
        self._thread: threading.Thread | None = None
        now = time.time()
        self._confirmed_at = snapshot_created_at if snapshot_created_at is not None else now
        self._snapshot_created_at = snapshot_created_at
        self._connected = False
        self._needs_resync = False
        self._replaying = False
        self._loss = ""
        self._losses: dict[str, int] = {kind: 0 for kind in LOSS_KINDS}
        self._resync_floor = Version()
        self._tried_snapshot: tuple[Path, int, int, int] | None = None
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
            losses=dict(self._losses),
            position=str(self._lists.view.position),
        )

    # -- the loop -----------------------------------------------------------

    def _run(self) -> None:
        delay = _MIN_BACKOFF
        reported = False
        while not self._stop.is_set():
            try:
                if self._needs_resync and not self._replaying:
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
        # Before reading: a primary the sentinels no longer name may hold writes the log
        # lost (a split brain); the read below then reaches the named one, whose log the
        # checks that follow compare with what this replica applied.
        self._primary.check()
        view = self._lists.view
        pipe = self._client.pipeline(transaction=False)
        # The log's state first, then the read: every entry numbered up to the counter seen
        # here is in the stream by the time XREAD answers, unless it was lost.
        # EVAL with the text, not a registered script: redis-py would send SCRIPT EXISTS
        # before every pipeline, one more round trip; Redis caches the compiled script.
        pipe.eval(INFO_SCRIPT, 2, self._stream, meta_key(self._stream))
        probe = view.position.epoch != "" and view.position.seq > 0
        if probe:  # is the entry applied last still in the log? (see applied_entry_gone)
            pipe.eval(STAMP_SCRIPT, 2, self._stream, meta_key(self._stream), str(view.version))
        pipe.xread({self._stream: str(view.version)}, count=self._count, block=self._block_ms)
        replies = pipe.execute()
        info = parse_info(replies[0])
        reply = replies[-1]
        loss = lost_log(view.position, info.position)
        if not loss and probe and _would_hold(info, view.version):
            stamp = parse_stamp(replies[1])
            if applied_entry_gone(view.position, stamp.found, stamp.position):
                loss = REWOUND
        if loss:
            self._start_resync(loss, view, info)
            return
        if info.missing_after(view.version):
            self._start_resync(TRIMMED, view, info)
            return
        entries: list[RawEntry] = reply[0][1] if reply else []
        if entries:
            self._oldest_unapplied_ms = Version.parse(field_text(entries[0][0])).ms
            if not self._apply(entries):
                self._start_resync(TRIMMED, self._lists.view, info)
                return
        position = self._lists.view.position
        read_all = len(entries) < self._count
        if read_all and counter_ahead(position, info.position, self._lists.version):
            self._start_resync(TRIMMED, self._lists.view, info)
            return
        self._update_lag(info)

    def _apply(self, entries: Sequence[RawEntry]) -> bool:
        """Apply the entries that follow on from the data's position.

        Returns:
            False if an entry was missing before one of them (a gap): the
            entries before the gap are applied, the rest are not.
        """
        view = self._lists.view
        position, consumed, kept, dead = follow_on(entries, view.position)
        if not consumed:
            return False
        plan = plan_batch(kept, view.infos)
        if plan.dead or dead:
            # In stream order: each dead letter keeps its entry's ID, which must increase.
            letters = sorted([*dead, *plan.dead], key=lambda d: Version.parse(d.entry_id))
            self._dead_letter(letters)
        last_id = field_text(entries[consumed - 1][0])
        if self._archive is not None:
            if plan.dead:
                refused = {letter.entry_id for letter in plan.dead}
                kept = [e for e in kept if field_text(e[0]) not in refused]
            self._archive.append(kept, view)
        try:
            self._lists.apply(plan.changes, version=Version.parse(last_id), position=position)
        except VersionError:
            logger.warning("skipping a read that ends at %s: data is already newer", last_id)
            return True
        for op, count in plan.numbers_by_op.items():
            self._numbers_by_op[op] = self._numbers_by_op.get(op, 0) + count
        self._applied_since_base += consumed
        with self._applied:
            self._applied.notify_all()
        return consumed == len(entries)

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
            if self._replaying:
                self._replaying = False
                self._needs_resync = False
                logger.warning("caught up again at %s after the resync: serving", position)
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

    def _start_resync(self, loss: str, view: ListView, info: StreamInfo) -> None:
        self._needs_resync = True
        self._replaying = False
        self._loss = loss
        self._losses[loss] += 1
        self._resync_floor = max(info.first_recorded, info.max_deleted)
        self._tried_snapshot = None
        where = self._data_dir if self._data_dir is not None else "--data-dir (not set)"
        if loss == TRIMMED:
            logger.error(
                "change log %s no longer holds the entries after %s (%s; it starts at %s): "
                "not serving until a snapshot at %s or later appears in %s "
                "(run suppression-loader compact)",
                self._stream,
                view.version,
                view.position,
                info.first_recorded,
                self._resync_floor,
                where,
            )
            return
        if loss == REWOUND and self._recover_rewound:
            logger.critical(
                "change log %s went backwards: this replica applied up to %s (version %s) but "
                "the log is at %s and no longer holds what it applied last (a Redis failover "
                "lost writes no Redis replica had confirmed, so none was acknowledged). Not "
                "serving: reloading the newest snapshot in %s that the log agrees with, then "
                "replaying",
                self._stream,
                view.position,
                view.version,
                info.position,
                where,
            )
            return
        logger.critical(
            "change log %s was %s: this replica is at %s (version %s) but the log is at %s. "
            "Not serving: changes are missing or the log lost changes this replica holds. "
            "Reseed the log from the newest snapshot (suppression-loader reseed --data-dir "
            "%s); this replica then loads it",
            self._stream,
            "reset" if loss == RESET else "rewound",
            view.position,
            view.version,
            info.position,
            where,
        )
        if loss == RESET and not info.epoch:
            try:
                mark_lost(self._client, self._stream, view.position.epoch)
            except redis.RedisError as exc:
                logger.error("cannot mark change log %s as lost: %s", self._stream, exc)
        if self._on_loss is not None:
            try:
                self._on_loss()
            except Exception:  # saving is a courtesy; failing it must not stop the follower
                logger.exception("cannot save this replica's data after the change-log loss")

    def _try_resync(self) -> None:
        if self._loss == REWOUND and self._recover_rewound:
            self._recover()
            return
        if self._data_dir is None:
            return
        newest = find_newest(self._data_dir)
        if newest is None:
            return
        stat = newest.stat()
        stamp = (newest, stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if stamp == self._tried_snapshot:
            return  # already refused; reading a registry-sized file again costs seconds
        # Tried once per file version, refused or not: a registry-sized file takes seconds.
        self._tried_snapshot = stamp
        try:
            snapshot = read_snapshot(newest, self._snapshot_key)
        except (SnapshotError, OSError) as exc:
            logger.warning("cannot resync from %s: %s", newest, exc)
            return
        if not self._resyncs_to(snapshot.version, snapshot.position):
            return
        self._resume_from(snapshot.view(), str(newest))
        self.note_snapshot(snapshot.created_at)

    def _resume_from(self, view: ListView, source: str) -> None:
        """Swap in reloaded data, then replay the log; NOT_SERVING until caught up.

        Serving at once would answer from data older than writes already
        acknowledged, and say it is fresh: the last catch-up was confirmed
        for the data this replaces.
        """
        self._lists.replace(view)
        if self._archive is not None:
            try:
                self._archive.rebase(self._lists.view, "resync")
            except Exception:  # the next append notices the jump and writes the base
                logger.exception("cannot write the change archive's base after the resync")
        self._replaying = True
        self._loss = ""
        self._ordinal_base = None
        logger.warning(
            "resynchronized from %s at version %s (%s); replaying the change log, serving "
            "again once caught up",
            source,
            view.version,
            view.position,
        )
        with self._applied:
            self._applied.notify_all()

    def _recover(self) -> None:
        """After the log went backwards: reload the newest snapshot it agrees with, or start over.

        A snapshot agrees with the log when the log holds, at the snapshot's
        version, the very entry (epoch and sequence number) the snapshot
        applied last, or when the snapshot is where the log's epoch starts.
        Snapshots of changes the log lost are renamed ``*.diverged``: kept for
        inspection, never loaded again. With no snapshot to go back to, a log
        that still holds its epoch from the first entry is replayed from empty.
        """
        info = parse_info(self._client.eval(INFO_SCRIPT, 2, self._stream, meta_key(self._stream)))
        log = info.position
        if not log.epoch:
            return  # the log lost its epoch meanwhile: nothing to go back to, wait for a reseed
        for path in _snapshots_newest_first(self._data_dir):
            version = _version_in_name(path)
            stamp = self._stamp(version)
            starts_epoch = version == stamp.base and not stamp.found
            if not starts_epoch and not (stamp.found and stamp.position.epoch == log.epoch):
                if stamp.found or _would_hold(info, version):
                    self._set_aside(path)
                continue
            try:
                snapshot = read_snapshot(path, self._snapshot_key)
            except (SnapshotError, OSError) as exc:
                logger.warning("cannot recover from %s: %s", path, exc)
                continue
            wanted = LogPosition(log.epoch, 0) if starts_epoch else stamp.position
            if snapshot.position != wanted:
                self._set_aside(path)
                continue
            self._resume_from(snapshot.view(), f"snapshot {path}")
            self.note_snapshot(snapshot.created_at)
            return
        untrimmed = info.entries_added == info.length and info.max_deleted == Version()
        if self._stamp(Version()).base == Version() and untrimmed:
            start = ListView(Version(), {}, {}, (), LogPosition(log.epoch, 0))
            self._resume_from(start, "an empty start (the log holds every entry of its epoch)")

    def _stamp(self, version: Version) -> EntryStamp:
        reply = self._client.eval(
            STAMP_SCRIPT, 2, self._stream, meta_key(self._stream), str(version)
        )
        return parse_stamp(reply)

    def _set_aside(self, path: Path) -> None:
        """Rename a snapshot of changes the log lost, so that nothing loads it again."""
        target = path.with_name(path.name + ".diverged")
        try:
            path.rename(target)
        except OSError as exc:
            logger.error("cannot set aside %s, which holds changes the log lost: %s", path, exc)
            return
        logger.warning("set aside %s: it holds changes the change log lost", target)

    def _resyncs_to(self, version: Version, position: LogPosition) -> bool:
        """Whether a snapshot at ``version``/``position`` brings this replica back in step.

        With a sequenced log: a snapshot of the log's current epoch, no further
        than the log itself (past a trim point, after a trim). Without one (an
        older log): a snapshot at or past the trim point, newer than the data.
        """
        log = parse_info(
            self._client.eval(INFO_SCRIPT, 2, self._stream, meta_key(self._stream))
        ).position
        if log.epoch:
            if position.epoch != log.epoch or position.seq > log.seq:
                return False
            return self._loss != TRIMMED or version >= self._resync_floor
        return version >= self._resync_floor and version > self._lists.version


def _would_hold(info: StreamInfo, version: Version) -> bool:
    """Whether the stream would still hold the entry at ``version``, had nothing been lost."""
    return info.exists and version >= info.first_recorded and info.max_deleted < version


def _snapshots_newest_first(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(directory.glob("snapshot-*.snap"), reverse=True)


def _version_in_name(path: Path) -> Version:
    """The version a snapshot's name states (``snapshot-MS-SEQ.snap``); 0-0 if malformed."""
    parts = path.stem.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return Version()
    return Version(int(parts[1]), int(parts[2]))
