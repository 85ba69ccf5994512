"""A replica: one process's lists, kept current from the change log, with writes and snapshots.

The gRPC server, ``suppression check``, the local scrub and any program that
embeds the lists are thin shells around one :class:`Replica`. It owns:

- the lists (loaded from a snapshot and number files, or handed over loaded);
- the change-log follower that applies the stream to them;
- the writer that Suppress and Release go through;
- the snapshotter that writes periodic snapshots;
- freshness: whether its answers may be trusted, read in O(1) per request.

Build it from explicit options, call :meth:`Replica.start`, then ask it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from suppression.checker import CheckOutcome, SingleOutcome, check_batch, decide_one
from suppression.datasource import DataSource, LoadedData, load_lists
from suppression.e164 import Normalizer, NumberBlock
from suppression.entries import attempt_entries, entries_for
from suppression.errors import (
    ChangeLogError,
    InvalidEntryError,
    InvalidRequestError,
    NotReadyError,
    UnknownListError,
)
from suppression.freshness import Freshness
from suppression.lists import MAX_LISTS_PER_CHECK, ListKind, ListView, Op, SuppressionLists, Version
from suppression.snapshotkey import SnapshotKey

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import redis

    from suppression.archive import ArchiveOptions, ArchiveReader, ChangeArchive
    from suppression.changelog.follower import ChangeLogFollower, FollowerState
    from suppression.explain import Explanation
    from suppression.policy.batch import PolicyRequest
    from suppression.policy.model import PolicySet
    from suppression.policy.store import PolicyStore, Reload
    from suppression.settings import Settings
    from suppression.snapshotter import Snapshotter
    from suppression.writer import ChangeLogWriter

__all__ = ["ChangeLogOptions", "Replica", "SnapshotOptions"]

logger = logging.getLogger(__name__)

_BLOCK_MS = 500
"""How long one XREAD blocks; stop() interrupts it sooner."""

_FRESH = Freshness()


@dataclass(frozen=True, slots=True)
class ChangeLogOptions:
    """How a replica follows and writes the change log."""

    redis_url: str
    """Redis URL of the change log (redis://host:6379/0)."""
    stream: str = "suppression:deltas"
    """The stream key."""
    sentinels: tuple[str, ...] = ()
    """Redis Sentinels (HOST:PORT) that name the primary; the URL then gives the database."""
    sentinel_master: str = ""
    """The master name the sentinels monitor."""
    dead_letter_stream: str = "suppression:deltas:dead"
    """Where entries that cannot be applied go, with the reason."""
    max_staleness: float = 10.0
    """Seconds without confirming the data is caught up before answers are stale."""
    write_timeout: float = 5.0
    """Seconds a write waits for this replica to apply it."""
    fail_closed: bool = False
    """Answer every valid number SUPPRESSED while stale or known to miss changes."""
    min_replicas: int = 0
    """Redis replicas that must confirm a write (WAIT) before it is acknowledged."""
    replica_timeout: float = 1.0
    """Seconds a write waits for ``min_replicas`` Redis replicas."""

    def connect(self, *, socket_timeout: float) -> redis.Redis:
        """A new client for the change log (through the sentinels, when there are some)."""
        # Imported here so that a replica without a change log loads no Redis client.
        from suppression.redisconn import connect

        return connect(
            self.redis_url,
            socket_timeout=socket_timeout,
            sentinels=self.sentinels,
            master=self.sentinel_master,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ChangeLogOptions | None:
        """The ``serve`` options of the change log; None without ``--redis-url``."""
        if not settings.redis_url:
            return None
        return cls(
            redis_url=settings.redis_url,
            stream=settings.stream,
            sentinels=settings.sentinel,
            sentinel_master=settings.sentinel_master,
            dead_letter_stream=settings.dead_letter_stream,
            max_staleness=settings.max_staleness,
            write_timeout=settings.write_timeout,
            fail_closed=settings.fail_closed,
            min_replicas=settings.min_replicas,
            replica_timeout=settings.replica_timeout,
        )


@dataclass(frozen=True, slots=True)
class SnapshotOptions:
    """How often a replica that follows the change log writes snapshots into its data directory."""

    interval: float = 300.0
    """Seconds between snapshots; 0 turns them off."""
    keep: int = 3
    """Snapshots kept; older ones are deleted."""
    archive: ArchiveOptions | None = None
    """Keep every applied change in this change archive (the snapshot writer archives)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SnapshotOptions | None:
        """The ``serve`` snapshot options; None when turned off or without a data directory."""
        if settings.data_dir is None or settings.snapshot_interval <= 0:
            return None
        archive = None
        if not settings.no_archive:
            from suppression.archive import ArchiveOptions

            archive = ArchiveOptions(
                settings.archive_dir or settings.data_dir / "archive",
                segment_bytes=settings.archive_segment_bytes,
                retention_days=settings.archive_retention_days,
                fsync=not settings.archive_no_fsync,
                snapshots=settings.data_dir,
            )
        return cls(settings.snapshot_interval, settings.snapshot_keep, archive)


class Replica:
    """The lists of one process, the parts that keep them current, and the questions they answer.

    Thread-safe: any number of threads may call :meth:`check`, :meth:`submit`
    and the properties while the follower applies changes.
    """

    def __init__(
        self,
        data: DataSource | LoadedData,
        change_log: ChangeLogOptions | None = None,
        snapshots: SnapshotOptions | None = None,
        *,
        producer: str = "suppression",
        policies: PolicyStore | None = None,
    ) -> None:
        """Describe a replica; nothing is read or connected until :meth:`start`.

        Args:
            data: where to load the lists from, or lists already loaded (a
                pre-forked worker gets its parent's, shared copy-on-write).
            change_log: follow and write this change log; None serves the
                loaded data as it is and refuses writes.
            snapshots: write periodic snapshots into the data source's
                directory (only with a change log and a data directory).
            producer: the program name written into each entry this replica writes.
            policies: the pre-dial policies (``--policy-file``); with them every
                check is decided under a policy, the default one if it names none.
        """
        self._data = data
        self._change_log = change_log
        self._snapshots = snapshots
        self._producer = producer
        self._lists: SuppressionLists | None = None
        self._started = False
        self._follower: ChangeLogFollower | None = None
        self._writer: ChangeLogWriter | None = None
        self._snapshotter: Snapshotter | None = None
        self._archive: ChangeArchive | None = None
        self._writer_client: redis.Redis | None = None
        self._archive_reader: ArchiveReader | None = None
        self._as_of: tuple[Version, ListView] | None = None
        self._loaded: LoadedData | None = None
        self._policies = policies
        self._stopping = threading.Event()
        self._attempts_read = threading.Event()
        """Set once the attempts the snapshot lacks are read back (at once if none are)."""
        self._attempts_incomplete_until = 0.0
        """Until when (epoch seconds) attempt counts miss attempts the log no longer held."""
        self._attempts_read.set()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> LoadedData:
        """Load the data and, with a change log, follow it until caught up.

        Waits up to ``max_staleness`` for the first catch-up. If Redis cannot
        be reached by then, the replica serves the data it has, marked stale.

        Returns:
            What was loaded, for logs.

        Raises:
            ConfigError: nothing to load, a file is missing, or the Redis URL is malformed.
            SnapshotError: the newest snapshot is corrupt.
            NumberFileError: a number file has invalid lines.
        """
        loaded = self._data
        if isinstance(loaded, DataSource):
            loaded = load_lists(loaded, allow_empty=self._change_log is not None)
        self._loaded = loaded
        self._lists = loaded.lists
        if self._change_log is not None:
            self._follow(self._change_log, loaded)
        self._started = True
        return loaded

    def _follow(self, options: ChangeLogOptions, loaded: LoadedData) -> None:
        # Imported here so that a replica without a change log loads no Redis client.
        from suppression.changelog.follower import ChangeLogFollower
        from suppression.snapshotter import Snapshotter
        from suppression.writer import ChangeLogWriter, default_producer

        data_dir = self.data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        if loaded.snapshot_created_at is None and loaded.numbers == 0:
            logger.info("no snapshot: replaying the change log %s from the start", options.stream)
        archive = self._open_archive(loaded)
        follower = ChangeLogFollower(
            loaded.lists,
            options.connect(socket_timeout=_BLOCK_MS / 1000 + 5.0),
            stream=options.stream,
            dead_letter_stream=options.dead_letter_stream,
            max_staleness=options.max_staleness,
            data_dir=data_dir,
            snapshot_created_at=loaded.snapshot_created_at,
            on_loss=self._save_after_loss,
            block_ms=_BLOCK_MS,
            snapshot_key=self.snapshot_key,
            recover_rewound=options.min_replicas > 0,
            archive=archive,
        )
        # The socket outwaits both: the write itself and a WAIT for the Redis replicas.
        write_socket_timeout = options.write_timeout + options.replica_timeout
        self._writer_client = options.connect(socket_timeout=write_socket_timeout)
        self._writer = ChangeLogWriter(
            self._writer_client,
            options.stream,
            default_producer(self._producer),
            min_replicas=options.min_replicas,
            replica_timeout=options.replica_timeout,
        )
        if data_dir is not None and self._snapshots is not None:
            self._snapshotter = Snapshotter(
                loaded.lists,
                data_dir,
                self._snapshots.interval,
                self._snapshots.keep,
                on_written=follower.note_snapshot,
                key=self.snapshot_key,
            )
        self._follower = follower
        if loaded.snapshot_created_at is not None and loaded.lists.version.ms:
            # Beside the follower, not before it: an unreachable Redis must not delay serving
            # a replica without attempt caps (see serving).
            self._attempts_read.clear()
            threading.Thread(
                target=self._backfill_attempts,
                args=(options, loaded.lists, loaded.lists.version),
                name="attempts-backfill",
                daemon=True,
            ).start()
        started = time.monotonic()
        follower.start()
        if follower.wait_caught_up(options.max_staleness):
            logger.info(
                "caught up with %s at %s in %.2f s",
                options.stream,
                loaded.lists.version,
                time.monotonic() - started,
            )
        else:
            logger.warning(
                "not caught up with %s after %.1f s; serving data at %s, marked stale",
                options.stream,
                options.max_staleness,
                loaded.lists.version,
            )
        if self._snapshotter is not None:
            self._snapshotter.start()

    def _open_archive(self, loaded: LoadedData) -> ChangeArchive | None:
        """Open the change archive, if this replica archives, and anchor it to the loaded data."""
        options = self._snapshots.archive if self._snapshots is not None else None
        if options is None:
            return None
        from suppression.archive import ChangeArchive

        archive = ChangeArchive(options, self.snapshot_key)
        report = archive.open()
        archive.start(loaded.lists.view)
        logger.info(
            "archiving applied changes in %s (it ends at %s%s)",
            options.directory,
            archive.end,
            f"; {len(report.damage)} damaged segment(s)" if report.damage else "",
        )
        self._archive = archive
        return archive

    @property
    def archive_dir(self) -> Path | None:
        """The change archive this replica writes, or else reads (``archive/`` in its data dir)."""
        if self._archive is not None:
            return self._archive.options.directory
        if self._snapshots is not None and self._snapshots.archive is not None:
            return self._snapshots.archive.directory
        data_dir = self.data_dir
        return data_dir / "archive" if data_dir is not None else None

    def archive_reader(self) -> ArchiveReader:
        """A reader of the change archive (kept, so it reads only what is new).

        Raises:
            NotReadyError: this replica has no data directory, so no archive.
        """
        from suppression.archive import ArchiveReader

        directory = self.archive_dir
        if directory is None:
            raise NotReadyError(
                "this replica keeps no change archive (it has no --data-dir); ask the replica "
                "that writes snapshots"
            )
        reader = self._archive_reader
        if reader is None or reader.directory != directory:
            reader = self._archive_reader = ArchiveReader(directory)
        return reader

    def archive_known_until(self) -> Version | None:
        """Up to where no change exists beyond the archive's end, if this replica can vouch.

        Only the archiving replica can: it archives every change before applying
        it, so once its follower confirmed it read the whole log (fresh data),
        nothing up to that moment is missing from the archive. One second off
        for clocks: stream IDs come from the Redis server's clock.
        """
        follower = self._follower
        if self._archive is None or follower is None or self.freshness().stale:
            return None
        confirmed = time.time() - follower.staleness_seconds()
        return Version(int(confirmed * 1000) - 1000, 0)

    def view_as_of(self, at: Version) -> ListView:
        """The lists as they were at ``at``, from a snapshot and the change archive.

        Raises:
            NotReadyError: no archive here.
            ArchiveCoverageError: the archive cannot answer for ``at``.
        """
        from suppression.archive.asof import view_as_of

        cached = self._as_of
        if cached is not None and cached[0] == at:
            return cached[1]
        reader = self.archive_reader()
        known_until = self.archive_known_until()
        view = view_as_of(
            reader, at, snapshots=self.data_dir, key=self.snapshot_key, known_until=known_until
        )
        end = reader.catalog().end
        if end is not None and at <= end:
            self._as_of = (at, view)  # the past does not change; the present might
        return view

    def explain(
        self,
        number: int,
        at: Version,
        *,
        at_time_ms: int | None = None,
        visible: Callable[[str], bool] | None = None,
        policy: PolicyRequest | None = None,
    ) -> Explanation:
        """Explain ``number`` at ``at`` from the change archive (``suppression.explain``).

        With policies (``--policy-file``), the answer also gives the verdict of
        ``policy`` (or the default one) on the lists as they stood at ``at``,
        decided for ``at_time_ms``, or else for the version's own time.

        Raises:
            NotReadyError: no archive here.
            ArchiveCoverageError: the archive cannot answer for ``at``.
            InvalidRequestError: policy fields, and this replica has no policies;
                or an unknown policy.
            UnknownListError: a list the policy reads is not visible to the caller.
        """
        from suppression.explain import explain

        explanation = explain(
            self.archive_reader(),
            number,
            at,
            key=self.snapshot_key,
            known_until=self.archive_known_until(),
            at_time_ms=at_time_ms,
            visible=visible,
        )
        store = self._policies
        if store is None:
            if policy is not None and policy.given:
                raise InvalidRequestError(
                    "this server has no pre-dial policies (start it with --policy-file); "
                    "send no policy fields"
                )
            return explanation
        from suppression.explain.policy import explain_policy
        from suppression.policy.batch import PolicyRequest

        served, asked = store.served, policy or PolicyRequest()
        view = self.view_as_of(at)
        if visible is not None:
            try:
                hidden = [
                    name
                    for name in served.policies.get(asked.name).lists()
                    if name in view.bitmaps and not visible(name)
                ]
            except KeyError:
                hidden = []  # an unknown policy: refused with the known ones below
            if hidden:
                raise UnknownListError(
                    f"policy {asked.name or 'default'!r} reads lists you cannot see; "
                    "ask with a policy of your tenant"
                )
        decided_at = at_time_ms if at_time_ms is not None else at.ms
        verdict = explain_policy(view, served, number, decided_at, asked)
        return dataclasses.replace(explanation, policy=verdict)

    def _backfill_attempts(
        self, options: ChangeLogOptions, lists: SuppressionLists, version: Version
    ) -> None:
        """Read back the attempts the snapshot lacks (see :mod:`suppression.changelog.backfill`).

        Retried every second until Redis answers or the replica stops; until then
        its caps count only the attempts applied since the snapshot.
        """
        from suppression.changelog.backfill import attempts_before
        from suppression.policy.attempts import ATTEMPT_RETENTION
        from suppression.redisconn import redis_errors

        said = False
        while not self._stopping.is_set():
            try:
                with redis_errors("reading back attempts"):
                    found = attempts_before(
                        options.connect(socket_timeout=30.0),
                        options.stream,
                        version,
                        ATTEMPT_RETENTION,
                    )
                break
            except ChangeLogError:
                if not said:
                    logger.warning(
                        "attempts before the snapshot are read back once the change log answers"
                    )
                    said = True
                self._stopping.wait(1.0)
        else:
            return
        if found.attempts:
            lists.add_attempts(found.attempts)
        if not found.complete:
            # From then on every attempt of the window was applied live.
            self._attempts_incomplete_until = version.ms / 1000 + ATTEMPT_RETENTION
        self._attempts_read.set()
        if found.complete:
            logger.info("read back %d attempts the snapshot does not hold", len(found.attempts))
        else:
            logger.warning(
                "read back %d attempts, but the change log was trimmed inside the last %d days: "
                "attempt caps count fewer attempts than were made until that window passes",
                len(found.attempts),
                ATTEMPT_RETENTION // 86_400,
            )

    def _save_after_loss(self) -> None:
        """The log lost changes this replica may hold: save them as a snapshot to reseed from."""
        if self._snapshotter is not None:
            path = self._snapshotter.snapshot_now()
            if path is not None:
                logger.warning("saved this replica's data as %s to reseed the log from", path)

    def stop(self) -> None:
        """Stop following; write a last snapshot if one is due."""
        self._stopping.set()
        if self._follower is not None:
            self._follower.stop()
        if self._snapshotter is not None:
            self._snapshotter.stop()
            try:
                self._snapshotter.snapshot_now()
            except OSError as exc:
                logger.error("cannot write the final snapshot: %s", exc)
        if self._archive is not None:
            self._archive.close()
        if self._writer_client is not None:
            self._writer_client.close()

    # -- what it knows --------------------------------------------------------

    @property
    def data_dir(self) -> Path | None:
        """The snapshot directory of the data, if any."""
        return self._data.data_dir

    @property
    def snapshot_key(self) -> SnapshotKey | None:
        """The key its snapshots are signed and verified with, if any."""
        return self._data.snapshot_key

    @property
    def lists(self) -> SuppressionLists | None:
        """The lists, or None before :meth:`start` loaded them."""
        return self._lists

    @property
    def loaded(self) -> LoadedData | None:
        """What :meth:`start` loaded, or None before."""
        return self._loaded

    @property
    def serving(self) -> bool:
        """Started, and not known to miss changes: what health reports as SERVING.

        With attempt caps in a policy, the attempts a snapshot lacks must also
        be read back first: until then a restarted replica counts fewer
        attempts than its peers and would answer ALLOWED where they defer.
        """
        follower = self._follower
        if not self._started or (follower is not None and follower.needs_resync):
            return False
        return self._attempts_read.is_set() or not self._caps_in_use()

    def _caps_in_use(self) -> bool:
        store = self._policies
        return store is not None and any(p.caps for p in store.current.policies.values())

    def _refuse_caps_unread(self, policies: PolicySet, policy: PolicyRequest | None) -> None:
        """Refuse a decision under attempt caps while the attempts are still read back."""
        try:
            caps = policies.get(policy.name if policy is not None else "").caps
        except KeyError:
            return  # an unknown policy: check_with_policy refuses it with the known ones
        if caps:
            raise NotReadyError(
                "this replica started from a snapshot and is still reading back the dial "
                "attempts it lacks from the change log, so its attempt caps would count too "
                "few; ask another replica"
            )

    @property
    def attempts_complete(self) -> bool:
        """Whether attempt caps count every attempt of their window (for metrics).

        False while the attempts a snapshot lacks are read back, and after a
        read-back that found the log trimmed inside the window, until the
        window has passed since the snapshot.
        """
        if not self._attempts_read.is_set():
            return False
        return time.time() >= self._attempts_incomplete_until

    @property
    def accepts_writes(self) -> bool:
        """Whether Suppress and Release can go through this replica (it follows a change log)."""
        return self._writer is not None

    def freshness(self) -> Freshness:
        """How current the data is; O(1), asked on every answer."""
        follower = self._follower
        options = self._change_log
        if follower is None or options is None:
            return _FRESH
        staleness = follower.staleness_seconds()
        stale = follower.needs_resync or staleness > options.max_staleness
        return Freshness(
            stale=stale,
            staleness_ms=int(staleness * 1000),
            fail_closed=options.fail_closed and stale,
        )

    @property
    def policies(self) -> PolicyStore | None:
        """The pre-dial policies served, if any."""
        return self._policies

    def reload_policies(self) -> Reload | None:
        """Re-read the policy file (SIGHUP); a bad file keeps the running policies."""
        return self._policies.reload() if self._policies is not None else None

    @property
    def needs_resync(self) -> bool:
        """Whether this replica knows it misses changes the log no longer holds."""
        follower = self._follower
        return follower is not None and follower.needs_resync

    def follower_state(self) -> FollowerState | None:
        """The follower's full state for /metrics; None without a change log."""
        if self._follower is None:
            return None
        return dataclasses.replace(self._follower.state(), attempts_complete=self.attempts_complete)

    def view(self) -> ListView:
        """The current data, to answer from.

        Raises:
            NotReadyError: still loading, or known to miss changes (the
                change log was trimmed past this replica).
        """
        lists = self._lists
        if lists is None or not self._started:
            raise NotReadyError("data is still loading; retry shortly or ask another replica")
        return lists.view

    def answering_view(self) -> tuple[ListView, Freshness]:
        """The data to answer from now, and how fresh it is: every check starts here.

        Raises:
            NotReadyError: still loading; or the replica knows it misses changes
                and is not configured to fail closed. It never answers ALLOWED
                from data it knows to be incomplete.
        """
        view, freshness = self.view(), self.freshness()
        if self.needs_resync and not freshness.fail_closed:
            raise NotReadyError(
                "this replica is missing changes that the change log no longer holds and is "
                "waiting for a newer snapshot; ask another replica, or restart it from a "
                "newer snapshot"
            )
        return view, freshness

    # -- questions and writes -------------------------------------------------

    def check(
        self,
        e164: Sequence[int] | npt.NDArray[np.uint64],
        texts: Sequence[str] = (),
        region: str = "",
        lists: Sequence[str] = (),
        normalizer: Normalizer | None = None,
        *,
        max_batch: int = 0,
        as_of: Version | None = None,
        policy: PolicyRequest | None = None,
    ) -> tuple[CheckOutcome, Freshness]:
        """Decide a batch against the current data (see :func:`~suppression.checker.check_batch`).

        With ``as_of``, against the data as it was at that earlier version,
        rebuilt from a snapshot and the change archive (the last one is kept,
        so the batches of one audit re-check pay for it once).

        With policies (``--policy-file``) every batch is decided under one,
        ``policy`` or the default (:func:`~suppression.policy.batch.check_with_policy`).

        Returns:
            The outcome and the freshness it was answered with.

        Raises:
            NotReadyError: still loading; or the replica knows it misses
                changes and is not configured to fail closed. It never
                answers ALLOWED from data it knows to be incomplete.
            InvalidRequestError: the batch is too large; or it asks for a policy
                this replica does not have.
            UnknownListError: a named list does not exist.
            ArchiveCoverageError: the archive cannot answer as of ``as_of``.
        """
        if as_of is not None:
            # The past, rebuilt: complete up to ``as_of`` or refused, never stale.
            view, freshness = self.view_as_of(as_of), _FRESH
        else:
            view, freshness = self.answering_view()
        if self._policies is not None:
            # Imported here: a replica without policies never loads the policy code.
            from suppression.policy.batch import PolicyRequest, check_with_policy

            if as_of is not None and (policy is None or not policy.at_ms):
                # An audit asks what the policy said then, at the time of that version.
                policy = dataclasses.replace(policy or PolicyRequest(), at_ms=as_of.ms)

            served = self._policies.served
            if as_of is None and not self._attempts_read.is_set():
                self._refuse_caps_unread(served.policies, policy)
            outcome = check_with_policy(
                view,
                served.policies,
                policy or PolicyRequest(),
                e164,
                texts,
                region,
                normalizer,
                lists=lists,
                max_batch=max_batch,
                fail_closed=freshness.fail_closed,
                dated=served.dated,
                attempts=view.attempts,
            )
            return outcome, freshness
        if policy is not None and policy.given:
            raise InvalidRequestError(
                "this server has no pre-dial policies (start it with --policy-file); "
                "send no policy, decide_at_ms, consent days or calling_line"
            )
        outcome = check_batch(
            view,
            e164,
            texts,
            region,
            lists,
            normalizer,
            max_batch=max_batch,
            fail_closed=freshness.fail_closed,
        )
        return outcome, freshness

    def check_one(self, e164: int, lists: Sequence[str] = ()) -> tuple[SingleOutcome, Freshness]:
        """One E.164 integer against the current data: the dialer's "may I dial this number?".

        The answer :meth:`check` gives for ``[e164]``, without building a
        batch: on a single-number call that work costs more than the decision.

        Raises:
            NotReadyError: as :meth:`check`.
            UnknownListError: a named list does not exist.
            InvalidRequestError: this replica has policies; those decide through :meth:`check`.
        """
        if self._policies is not None:
            raise InvalidRequestError("a replica with policies decides every number through check")
        view, freshness = self.answering_view()
        names, bitmaps = view.select(lists)
        fail_closed = freshness.fail_closed
        verdict, mask, reason = decide_one(e164, bitmaps, fail_closed)
        return SingleOutcome(verdict, mask, reason, names, view.version, fail_closed), freshness

    def submit(
        self,
        op: Op,
        list_name: str,
        numbers: Sequence[int],
        blocks: Sequence[NumberBlock] = (),
        *,
        source: str,
        actor: str = "",
        evidence: str = "",
        create_list: bool = False,
        days: Sequence[int] | None = None,
    ) -> Version:
        """Validate, append to the change log, and wait until this replica applied it.

        ``days``, with an ADD, gives each number its day (a dated add), parallel to ``numbers``.

        ``op`` is ADD or REMOVE; blocks become range entries. A list that does
        not exist is created, as an opt-out list (the strictest kind), only
        when ``create_list`` says so: never as a side effect.

        Returns:
            The stream ID of the last entry written: from this version on,
            this replica's answers include the change.

        Raises:
            InvalidEntryError: the change is malformed, or a replica refused it.
            ConsentRequiredError: a removal from an opt-out list lacks consent evidence.
            UnknownListError: the list does not exist and ``create_list`` is not set,
                or creating it would exceed the lists one check can cover.
            ChangeLogResetError: the log is not the one this replica's data came
                from (Redis lost it); nothing was written.
            NotReadyError: no change log, still loading, or this replica must
                resynchronize from a snapshot first.
            ChangeLogError: Redis is unreachable, or this replica did not apply
                the change within the write timeout (it is in the log all the same).
        """
        writer, follower, options = self._writer, self._follower, self._change_log
        if writer is None or follower is None or options is None:
            raise NotReadyError("this replica follows no change log, so it cannot accept writes")
        view = self.view()
        if follower.needs_resync:
            raise NotReadyError(
                "this replica is waiting for a snapshot to resynchronize and cannot confirm "
                "a write; send it to another replica"
            )
        kinds = {name: info.kind for name, info in view.infos.items()}
        if list_name not in kinds:
            _check_creation(list_name, op, create_list, len(kinds))
        kind = kinds.get(list_name, ListKind.OPT_OUT)
        entries = entries_for(
            op,
            list_name,
            kind,
            numbers,
            blocks,
            source=source,
            actor=actor,
            evidence=evidence,
            days=days,
        )
        ids = writer.write(entries, kinds, epoch=view.position.epoch)
        _wait_applied(follower, ids, options.write_timeout, view.version)
        return ids[-1]

    def record_attempts(
        self,
        numbers: Sequence[int],
        times: Sequence[int],
        lines: Sequence[str],
        *,
        actor: str = "",
    ) -> Version:
        """Append dial attempts to the change log and wait until this replica applied them.

        Every replica applies the same attempts at the same versions, so their
        cap answers agree (see :mod:`suppression.policy.attempts`).

        Args:
            numbers: the called numbers, validated E.164 integers.
            times: when each attempt was made, UTC seconds.
            lines: each attempt's calling line ("" for none).
            actor: who reports them.

        Raises:
            InvalidEntryError: an attempt is malformed.
            NotReadyError: no change log, still loading, or waiting to resynchronize.
            ChangeLogResetError: the log is not the one this replica's data came from.
            ChangeLogError: Redis is unreachable, or the write was not applied in time.
        """
        writer, follower, options = self._writer, self._follower, self._change_log
        if writer is None or follower is None or options is None:
            raise NotReadyError("this replica follows no change log, so it cannot record attempts")
        view = self.view()
        if follower.needs_resync:
            raise NotReadyError(
                "this replica is waiting for a snapshot to resynchronize; send attempts to "
                "another replica"
            )
        entries = attempt_entries(numbers, times, lines, actor=actor)
        ids = writer.write(entries, epoch=view.position.epoch)
        _wait_applied(follower, ids, options.write_timeout, view.version)
        return ids[-1]


def _wait_applied(
    follower: ChangeLogFollower, ids: Sequence[Version], timeout: float, at: Version
) -> None:
    """Wait until this replica applied the last of ``ids``; refuse if it dead-lettered one.

    Raises:
        ChangeLogError: not applied within ``timeout`` (it is in the log all the same).
        InvalidEntryError: this replica refused an entry.
    """
    last = ids[-1]
    if not follower.wait_applied(last, timeout):
        raise ChangeLogError(
            f"the change is in the change log as {last}, but this replica has not applied it "
            f"within {timeout:g} s (it is at {at}); other replicas apply it as they catch up"
        )
    for entry_id in ids:
        reason = follower.dead_letter_reason(str(entry_id))
        if reason is not None:
            raise InvalidEntryError(f"entry {entry_id} was not applied: {reason}")


def _check_creation(list_name: str, op: Op, create_list: bool, existing: int) -> None:
    """Refuse a write that would create a list by accident, or one list too many.

    Raises:
        UnknownListError: with what to do instead.
    """
    if op is not Op.ADD or not create_list:
        raise UnknownListError(
            f"list {list_name[:64]!r} does not exist; to create it, send the Suppress "
            "with create_list set (admin scope), or use suppression-loader --create-list"
        )
    if existing >= MAX_LISTS_PER_CHECK:
        raise UnknownListError(
            f"there are already {existing} lists, as many as one check can cover; "
            "remove one before creating another"
        )
