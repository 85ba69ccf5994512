"""Live changes in a serving process: the follower, the writer, the snapshotter, wired together.

:func:`start_live_changes` is all that ``server.py`` calls; :class:`LiveChanges`
is what the servicer's Suppress and Release write through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from grpc_health.v1 import health_pb2

from suppression.changelog import ChangeLogFollower
from suppression.datasource import LoadReport, load_lists
from suppression.e164 import NumberBlock
from suppression.entries import Entry, InvalidEntryError, split_numbers
from suppression.errors import ChangeLogError, NotReadyError
from suppression.lists import ListKind, Op, SuppressionLists, Version
from suppression.redisconn import connect
from suppression.service import Freshness
from suppression.settings import Settings
from suppression.snapshot import find_newest
from suppression.snapshotter import Snapshotter
from suppression.v1 import suppression_pb2 as pb
from suppression.writer import ChangeLogWriter, default_producer

if TYPE_CHECKING:
    from suppression.server import ServingProcess

__all__ = ["LiveChanges", "initial_lists", "start_live_changes"]

logger = logging.getLogger(__name__)

_BLOCK_MS = 500
_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Suppression"].full_name


class LiveChanges:
    """Writes through the change log and waits until this replica has applied them."""

    def __init__(
        self,
        lists: SuppressionLists,
        writer: ChangeLogWriter,
        follower: ChangeLogFollower,
        *,
        write_timeout: float,
        fail_closed: bool,
        snapshotter: Snapshotter | None = None,
    ) -> None:
        """Create the live-change side of a process (nothing starts here).

        Args:
            lists: the served lists.
            writer: appends entries to the stream.
            follower: applies the stream to ``lists``.
            write_timeout: seconds a write waits for this replica to apply it.
            fail_closed: answer SUPPRESSED for everything while stale.
            snapshotter: writes periodic snapshots, if configured.
        """
        self._lists = lists
        self.writer = writer
        self.follower = follower
        self._write_timeout = write_timeout
        self._fail_closed = fail_closed
        self.snapshotter = snapshotter

    def freshness(self) -> Freshness:
        """How current the data is; the servicer asks on every answer."""
        state = self.follower.state()
        stale = state.stale or state.needs_resync
        return Freshness(
            stale=stale,
            staleness_ms=int(state.staleness_seconds * 1000),
            fail_closed=self._fail_closed and stale,
        )

    def submit(
        self,
        op: Op,
        list_name: str,
        numbers: Sequence[int],
        blocks: Sequence[NumberBlock],
        *,
        source: str,
        actor: str,
        evidence: str,
    ) -> Version:
        """Validate, append to the stream, and wait until this replica applied it.

        ``op`` is ADD or REMOVE; blocks become range entries. A new list is
        created as an opt-out list, the strictest kind.

        Returns:
            The stream ID of the last entry written: from this version on,
            this replica's answers include the change.

        Raises:
            InvalidEntryError: the change is malformed.
            ConsentRequiredError: a removal from an opt-out list lacks consent evidence.
            NotReadyError: this replica must resynchronize from a snapshot first.
            ChangeLogError: Redis is unreachable, or this replica did not apply
                the change within --write-timeout (it is in the log all the same).
        """
        if self.follower.state().needs_resync:
            raise NotReadyError(
                "this replica is waiting for a snapshot to resynchronize and cannot confirm "
                "a write; send it to another replica"
            )
        infos = self._lists.view.infos
        kinds = {name: info.kind for name, info in infos.items()}
        kind = kinds.get(list_name, ListKind.OPT_OUT)
        range_op = Op.ADD_RANGE if op is Op.ADD else Op.REMOVE_RANGE
        entries = [
            Entry(op, list_name, kind, source, chunk, actor=actor, evidence=evidence)
            for chunk in split_numbers(numbers)
        ]
        entries += [
            Entry(range_op, list_name, kind, source, (), b.first, b.last, actor, evidence)
            for b in blocks
        ]
        ids = self.writer.write(entries, kinds)
        last = ids[-1]
        if not self.follower.wait_applied(last, self._write_timeout):
            raise ChangeLogError(
                f"the change is in the change log as {last}, but this replica has not applied it "
                f"within {self._write_timeout:g} s (it is at {self._lists.version}); "
                "other replicas apply it as they catch up"
            )
        for entry_id in ids:
            reason = self.follower.dead_letter_reason(str(entry_id))
            if reason is not None:
                raise InvalidEntryError(f"entry {entry_id} was not applied: {reason}")
        return last

    def stop(self) -> None:
        """Stop following; write a last snapshot if one is due."""
        self.follower.stop()
        if self.snapshotter is not None:
            self.snapshotter.stop()
            try:
                self.snapshotter.snapshot_now()
            except OSError as exc:
                logger.error("cannot write the final snapshot: %s", exc)


def initial_lists(settings: Settings) -> tuple[SuppressionLists, LoadReport]:
    """The lists to start from: the newest snapshot, or empty lists when following a log.

    A replica that follows a change log may start with no snapshot at all
    and replay the stream from its beginning.
    """
    no_snapshot = settings.data_dir is None or find_newest(settings.data_dir) is None
    if settings.redis_url and no_snapshot and not settings.list:
        if settings.data_dir is not None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        logger.info("no snapshot: replaying the change log %s from the start", settings.stream)
        lists = SuppressionLists(default_lists=settings.default_lists or None)
        return lists, LoadReport(None, 0.0, 0)
    return load_lists(settings)


def start_live_changes(
    process: ServingProcess,
    settings: Settings,
    lists: SuppressionLists,
    snapshot_created_at: float | None = None,
) -> LiveChanges:
    """Follow the change log, accept writes, snapshot periodically; mark SERVING once caught up.

    Waits up to --max-staleness for the first catch-up. If Redis cannot be
    reached by then, the process serves the data it has, marked stale.
    """
    process.servicer.set_lists(lists)

    def on_health(serving: bool) -> None:
        if serving:
            process.mark_serving(lists)
        else:
            for name in ("", _SERVICE_NAME):
                process.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    client = connect(settings.redis_url, socket_timeout=_BLOCK_MS / 1000 + 5.0)
    follower = ChangeLogFollower(
        lists,
        client,
        stream=settings.stream,
        dead_letter_stream=settings.dead_letter_stream,
        max_staleness=settings.max_staleness,
        data_dir=settings.data_dir,
        snapshot_created_at=snapshot_created_at,
        on_health=on_health,
        block_ms=_BLOCK_MS,
    )
    writer_client = connect(settings.redis_url, socket_timeout=settings.write_timeout)
    writer = ChangeLogWriter(writer_client, settings.stream, default_producer("suppression"))
    snapshotter = None
    if settings.data_dir is not None and settings.snapshot_interval > 0:
        snapshotter = Snapshotter(
            lists,
            settings.data_dir,
            settings.snapshot_interval,
            settings.snapshot_keep,
            on_written=follower.note_snapshot,
        )
    live = LiveChanges(
        lists,
        writer,
        follower,
        write_timeout=settings.write_timeout,
        fail_closed=settings.fail_closed,
        snapshotter=snapshotter,
    )
    process.servicer.attach_change_log(live, live.freshness)
    process.follower_state = follower.state
    started = time.monotonic()
    follower.start()
    if follower.wait_caught_up(settings.max_staleness):
        logger.info(
            "caught up with %s at %s in %.2f s",
            settings.stream,
            lists.version,
            time.monotonic() - started,
        )
    else:
        logger.warning(
            "not caught up with %s after %.1f s; serving data at %s, marked stale",
            settings.stream,
            settings.max_staleness,
            lists.version,
        )
    if not follower.state().needs_resync:
        process.mark_serving(lists)
    if snapshotter is not None:
        snapshotter.start()
    return live
