"""The ``suppression-loader`` command: import, publish, compact, reseed.

Every flag is also a ``SUPPRESSION_*`` environment variable (see the README's
option table); exit code 0 on success, 2 on error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import redis
from pyroaring import BitMap64

from loader.changefile import read_change_file
from loader.dated import changed_days, read_dated
from loader.progress import progress, read_progress
from loader.publish import entries, publish
from loader.readers import read_numbers, ten_digit_stream
from loader.state import materialize
from suppression.changelog.epoch import reseed
from suppression.cliparse import CommandParser, add_version
from suppression.datasource import snapshot_key
from suppression.e164 import validate_region
from suppression.errors import ConfigError, SuppressionError
from suppression.lists import (
    ListInfo,
    ListKind,
    ListView,
    LogPosition,
    Op,
    SuppressionLists,
    Version,
)
from suppression.logs import configure_logging, report_error, requested_format
from suppression.numberfile import invalid_lines_message, normalize_lines
from suppression.policy.dated import DatedList, carry_days
from suppression.redisconn import connect, redis_errors
from suppression.settings import Settings, add_arguments, settings_from_args
from suppression.snapshot import find_newest, read_snapshot, write_snapshot
from suppression.snapshotkey import SnapshotKey
from suppression.snapshotter import prune_snapshots
from suppression.writer import ChangeLogWriter, default_producer

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2
PROG = "suppression-loader"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = CommandParser(
        prog=PROG,
        description="Load registry files and opt-outs into snapshots and the change log. "
        "Exit code 0: done; 2: error, in one line on stderr, with nothing written.",
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    importer = commands.add_parser(
        "import",
        help="import registry or list files: publish the difference to the change log "
        "(--redis-url), or, with no change log yet, build a snapshot in --data-dir",
    )
    importer.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_arguments(importer, "import")
    publisher = commands.add_parser("publish", help="publish single opt-outs or their release")
    publisher.add_argument("action", choices=("add", "remove"))
    publisher.add_argument("numbers", nargs="+", metavar="NUMBER", help="numbers, any format")
    add_arguments(publisher, "publish")
    compact = commands.add_parser(
        "compact",
        help="write a snapshot of the newest snapshot plus the change log, then trim the "
        "log up to that snapshot",
    )
    add_arguments(compact, "compact")
    reseeder = commands.add_parser(
        "reseed",
        help="after Redis lost the change log: start a new epoch of the log from the newest "
        "snapshot in --data-dir, so that replicas load it and serve again",
    )
    add_arguments(reseeder, "reseed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``suppression-loader`` console script.

    Every error, a usage error included, is one line on stderr (a JSON record
    with ``--log-format json``) and exit code 2.
    """
    raw = sys.argv[1:] if argv is None else list(argv)
    configure_logging("INFO", requested_format(raw, os.environ))
    try:
        args = build_parser().parse_args(raw)
        settings = settings_from_args(args)
        configure_logging(settings.log_level, settings.log_format)
        # Read before anything else, so a bad key file fails before minutes of work.
        key = snapshot_key(settings.snapshot_key_file)
        if args.command == "import":
            if settings.changes:
                return _import_changes(settings, args.files, key)
            return _import(settings, args.files, key)
        if args.command == "publish":
            op = Op.ADD if args.action == "add" else Op.REMOVE
            return _publish(settings, op, args.numbers, key)
        if args.command == "reseed":
            return _reseed(settings, key)
        return _compact(settings, key)
    except SuppressionError as exc:
        report_error(PROG, str(exc))
    except OSError as exc:
        report_error(PROG, str(exc))
    except KeyboardInterrupt:
        report_error(PROG, "interrupted; run the same command again to finish")
    return EXIT_ERROR


# -- import -----------------------------------------------------------------


def _kind(settings: Settings, default: ListKind) -> ListKind:
    try:
        return ListKind(settings.kind) if settings.kind else default
    except ValueError:
        kinds = ", ".join(kind.value for kind in ListKind)
        raise ConfigError(f"--kind {settings.kind!r}: use one of {kinds}") from None


def _provenance(settings: Settings, default_source: str) -> dict[str, str]:
    return {
        "source": settings.source or default_source,
        "actor": settings.actor or default_producer("suppression-loader"),
        "evidence": settings.evidence,
    }


def _require_list_name(settings: Settings) -> str:
    if not settings.list_name:
        raise ConfigError("name the list to change with --list-name NAME")
    return settings.list_name


def _list_kind(
    settings: Settings, infos: Mapping[str, ListInfo], list_name: str, default: ListKind
) -> ListKind:
    """The kind of the list to change, which must exist unless ``--create-list`` was given.

    A mistyped ``--list-name`` would otherwise create a new list quietly, and the
    numbers meant for the real one would never be suppressed.

    Raises:
        ConfigError: the list does not exist and ``--create-list`` is off, or
            ``--kind`` contradicts the existing list's kind.
    """
    requested = _kind(settings, default)
    info = infos.get(list_name)
    if info is None:
        if not settings.create_list:
            known = ", ".join(sorted(infos)) or "none yet"
            raise ConfigError(
                f"list {list_name!r} does not exist (existing lists: {known}); check "
                f"--list-name, or add --create-list to create it as a new {requested.value} list "
                "(choose the kind with --kind)"
            )
        logger.info("creating list %s (%s)", list_name, requested.value)
        return requested
    if settings.kind and info.kind is not requested:
        raise ConfigError(
            f"list {list_name!r} is a {info.kind.value} list, not {requested.value}: drop "
            "--kind, or name another list"
        )
    return info.kind


def _read_all(settings: Settings, files: Sequence[Path]) -> BitMap64:
    """Every number and block of the files, as one bitmap."""
    region = _region(settings.region)
    started = time.perf_counter()
    bitmap = BitMap64()
    numbers = blocks = skipped = 0
    with read_progress(sum(_size(path) for path in files)) as report:
        for path in files:
            stream = ten_digit_stream(
                path,
                settings.input_format,
                skip_invalid=settings.skip_invalid,
                progress=report,
            )
            if stream is not None:  # a registry download: piece by piece, never whole
                for values in stream.pieces():
                    bitmap.update(values)
                    numbers += len(values)
                skipped += len(stream.bad_lines)
                continue
            part = read_numbers(
                path,
                settings.input_format,
                column=settings.column,
                region=region,
                skip_invalid=settings.skip_invalid,
                progress=report,
            )
            bitmap.update(part.numbers)
            for block in part.blocks:
                bitmap.add_range(block.first, block.last + 1)
            numbers += len(part.numbers)
            blocks += len(part.blocks)
            skipped += len(part.bad_lines)
    seconds = time.perf_counter() - started
    # Counts with separators: the log filter masks bare runs of 7+ digits as phone numbers.
    logger.info(
        "read %s numbers and %s blocks from %s file(s) in %.2f s (%.1f million numbers/s)%s",
        f"{numbers:,}",
        f"{blocks:,}",
        f"{len(files):,}",
        seconds,
        numbers / max(seconds, 1e-9) / 1e6,
        f"; skipped {skipped:,} line(s)" if skipped else "",
    )
    return bitmap


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read_numbers reports the missing file


def _current(settings: Settings, client: redis.Redis, key: SnapshotKey | None) -> ListView:
    """The lists as they are now: the newest snapshot in --data-dir plus the change log."""
    with progress("replaying the change log", None) as advance:
        return materialize(settings.data_dir, client, settings.stream, advance, key).lists.view


def _connect(settings: Settings) -> redis.Redis:
    """The change log's client; its socket outwaits a WAIT for --min-replicas."""
    return connect(
        settings.redis_url,
        socket_timeout=10.0 + settings.replica_timeout,
        sentinels=settings.sentinel,
        master=settings.sentinel_master,
    )


def _writer(settings: Settings, client: redis.Redis, view: ListView) -> ChangeLogWriter:
    """A writer bound to the log the current state came from: a reset log refuses it."""
    producer = default_producer("suppression-loader")
    return ChangeLogWriter(
        client,
        settings.stream,
        producer,
        epoch=view.position.epoch,
        min_replicas=settings.min_replicas,
        replica_timeout=settings.replica_timeout,
    )


def _import(settings: Settings, files: Sequence[Path], key: SnapshotKey | None) -> int:
    if settings.with_dates:
        return _import_dated(settings, files, key)
    list_name = _require_list_name(settings)
    kind = _kind(settings, ListKind.REGISTRY)
    if settings.redis_url:
        _connect(settings)  # a malformed URL fails before minutes of reading
    target = _read_all(settings, files)
    if not settings.redis_url:
        return _import_snapshot(settings, list_name, kind, target, key)
    client = _connect(settings)
    view = _current(settings, client, key)
    actual_kind = _list_kind(settings, view.infos, list_name, kind)
    existing = view.bitmaps.get(list_name, BitMap64())
    additions = np.asarray((target - existing).to_array(), dtype=np.uint64)
    if actual_kind is ListKind.OPT_OUT:
        deletions = np.zeros(0, dtype=np.uint64)
        kept = existing.difference_cardinality(target)
    else:
        deletions = np.asarray((existing - target).to_array(), dtype=np.uint64)
        kept = 0
    provenance = _provenance(settings, "registry")
    batch = entries(Op.REMOVE, list_name, actual_kind, deletions, provenance=provenance)
    batch += entries(Op.ADD, list_name, actual_kind, additions, provenance=provenance)
    writer = _writer(settings, client, view)
    started = time.perf_counter()
    with progress("publishing", len(additions) + len(deletions)) as advance:
        written = publish(writer, batch, _kinds(view), advance=advance)
    seconds = time.perf_counter() - started
    print(
        f"{list_name}: {len(additions):,} added, {len(deletions):,} removed against version "
        f"{view.version} in {len(written):,} entries ({seconds:.2f} s); "
        f"version {written[-1] if written else view.version}{_kept_note(kept)}"
    )
    return EXIT_OK


def _import_dated(settings: Settings, files: Sequence[Path], key: SnapshotKey | None) -> int:
    """``import --with-dates``: CSVs of number and date; the list and its days become the files'.

    Through the change log: removals for numbers the files lack (never from an
    opt-out list), then dated adds for numbers that are new or carry another day.
    Without ``--redis-url``: a bootstrap snapshot, as a plain import writes.
    """
    list_name = _require_list_name(settings)
    kind = _kind(settings, ListKind.REGISTRY)
    if settings.redis_url:
        _connect(settings)  # a malformed URL fails before minutes of reading
    target = read_dated(files, _region(settings.region))
    if not settings.redis_url:
        return _import_snapshot(settings, list_name, kind, target.bitmap.copy(), key, target)
    client = _connect(settings)
    view = _current(settings, client, key)
    actual_kind = _list_kind(settings, view.infos, list_name, kind)
    existing = view.bitmaps.get(list_name, BitMap64())
    numbers, days = changed_days(target, existing, view.days.get(list_name))
    if actual_kind is ListKind.OPT_OUT:
        deletions = np.zeros(0, dtype=np.uint64)
        kept = existing.difference_cardinality(target.bitmap)
    else:
        deletions = np.asarray((existing - target.bitmap).to_array(), dtype=np.uint64)
        kept = 0
    provenance = _provenance(settings, "registry")
    batch = entries(Op.REMOVE, list_name, actual_kind, deletions, provenance=provenance)
    batch += entries(Op.ADD, list_name, actual_kind, numbers, provenance=provenance, days=days)
    writer = _writer(settings, client, view)
    with progress("publishing", len(numbers) + len(deletions)) as advance:
        written = publish(writer, batch, _kinds(view), advance=advance)
    print(
        f"{list_name}: {len(numbers):,} added or given another day, {len(deletions):,} removed "
        f"against version {view.version} in {len(written):,} entries; "
        f"version {written[-1] if written else view.version}{_kept_note(kept)}"
    )
    return EXIT_OK


def _kinds(view: ListView) -> dict[str, ListKind]:
    """The actual kind of every list: what the replicas check each entry against."""
    return {name: info.kind for name, info in view.infos.items()}


def _kept_note(kept: int) -> str:
    """What an import into an opt-out list did with the numbers its files lack."""
    if not kept:
        return ""
    return (
        f"; kept {kept:,} opt-out number(s) that the file(s) lack: an import never releases "
        "an opt-out, release one with suppression-loader publish remove --source consent "
        "--evidence REF"
    )


def _import_snapshot(
    settings: Settings,
    list_name: str,
    kind: ListKind,
    bitmap: BitMap64,
    key: SnapshotKey | None,
    dated: DatedList | None = None,
) -> int:
    """Bootstrap: a snapshot with this list replaced, before any replica follows a log.

    An opt-out list is not replaced but added to: its numbers that the files
    lack stay (see docs/consent.md), with their days. ``dated`` gives the
    imported numbers their days (``--with-dates``); other lists keep theirs.

    Raises:
        ConfigError: no --data-dir; the newest snapshot there already follows a
            change log (import with --redis-url instead); or the list's kind
            would change.
    """
    if settings.data_dir is None:
        raise ConfigError(
            "import needs --redis-url (publish the changes) or --data-dir (write a snapshot)"
        )
    newest = find_newest(settings.data_dir)
    bitmaps: dict[str, BitMap64] = {}
    infos: dict[str, ListInfo] = {}
    days: dict[str, DatedList] = {}
    version = Version(0, 0)
    position = LogPosition()
    if newest is not None:
        base = read_snapshot(newest, key)
        if base.version.ms or base.position.epoch:
            # The log may hold changes after this snapshot, which a snapshot written
            # here cannot see: a list it created could contradict one the log created.
            raise ConfigError(
                f"{newest} is at change-log version {base.version}: replicas follow a change "
                "log, and a snapshot written without it would miss its changes. Import with "
                "--redis-url URL to publish the difference instead"
            )
        bitmaps, infos, version = dict(base.bitmaps), dict(base.infos), base.version
        position = base.position
        days = dict(base.days)
    kind = _list_kind(settings, infos, list_name, kind)
    kept = 0
    previous = days.pop(list_name, None)
    if kind is ListKind.OPT_OUT and list_name in bitmaps:
        kept = bitmaps[list_name].difference_cardinality(bitmap)
        bitmap |= bitmaps[list_name]
    else:
        previous = None  # replaced: the old days go with the old numbers
    bitmap.run_optimize()
    bitmaps[list_name] = bitmap
    infos[list_name] = ListInfo(list_name, kind)
    updates = []
    if dated is not None:
        updates.append((np.array(dated.bitmap.to_array(), dtype=np.uint64), dated.days))
    carried = carry_days(bitmap, previous, BitMap64(), updates)
    if carried is not None:
        days[list_name] = carried
    lists = SuppressionLists(bitmaps, infos.values(), version.next(), position=position, days=days)
    path = write_snapshot(settings.data_dir, lists.view, key)
    print(
        f"{list_name}: {len(bitmap):,} numbers; wrote {path} at version {lists.version}"
        f"{_kept_note(kept)}"
    )
    return EXIT_OK


def _import_changes(settings: Settings, files: Sequence[Path], key: SnapshotKey | None) -> int:
    list_name = _require_list_name(settings)
    if not settings.redis_url:
        raise ConfigError("import --changes publishes to the change log: give --redis-url")
    changes = read_change_file(list(files), skip_invalid=settings.skip_invalid)
    client = _connect(settings)
    view = _current(settings, client, key)
    kind = _list_kind(settings, view.infos, list_name, ListKind.REGISTRY)
    provenance = _provenance(settings, "registry")
    batch = entries(Op.REMOVE, list_name, kind, changes.deletions, provenance=provenance)
    batch += entries(Op.ADD, list_name, kind, changes.additions, provenance=provenance)
    writer = _writer(settings, client, view)
    total = len(changes.additions) + len(changes.deletions)
    with progress("publishing changes", total) as advance:
        written = publish(writer, batch, _kinds(view), advance=advance)
    print(
        f"{list_name}: {len(changes.additions):,} additions, {len(changes.deletions):,} "
        f"deletions in {len(written):,} entries; version {written[-1] if written else 'unchanged'}"
    )
    return EXIT_OK


# -- publish ----------------------------------------------------------------


def _publish(settings: Settings, op: Op, texts: Sequence[str], key: SnapshotKey | None) -> int:
    list_name = _require_list_name(settings)
    if not settings.source:
        raise ConfigError("say where the change comes from with --source (in_call, app, ...)")
    if not settings.redis_url:
        raise ConfigError("publish writes to the change log: give --redis-url")
    if settings.with_dates:
        return _publish_dated(settings, op, texts, key)
    parsed = normalize_lines(enumerate(texts, start=1), _region(settings.region))
    if parsed.skipped_lines:
        bad = [(n, reason.name.lower()) for n, reason in parsed.skipped_lines]
        hint = " (national forms need --region)" if not settings.region else ""
        raise ConfigError(
            f"{invalid_lines_message('the command line', bad, item='argument')}{hint}: "
            "give each NUMBER with + and its country code, or as a +1900xxxxxxx block"
        )
    numbers = list(dict.fromkeys(parsed.numbers.tolist()))
    blocks = parsed.blocks
    client = _connect(settings)
    view = _current(settings, client, key)
    kind = _list_kind(settings, view.infos, list_name, ListKind.OPT_OUT)
    batch = entries(op, list_name, kind, numbers, blocks, provenance=_provenance(settings, ""))
    written = publish(_writer(settings, client, view), batch, _kinds(view))
    print(
        f"published {len(numbers) + len(blocks):,} change(s) to {list_name}; version {written[-1]}"
    )
    return EXIT_OK


def _publish_dated(
    settings: Settings, op: Op, texts: Sequence[str], key: SnapshotKey | None
) -> int:
    """``publish add --with-dates FILE...``: every number of the CSVs with its day."""
    if op is not Op.ADD:
        raise ConfigError("--with-dates goes with publish add: a removal carries no days")
    list_name = settings.list_name
    target = read_dated([Path(text) for text in texts], _region(settings.region))
    if not len(target):
        raise ConfigError("the file(s) hold no numbers: nothing to publish")
    client = _connect(settings)
    view = _current(settings, client, key)
    kind = _list_kind(settings, view.infos, list_name, ListKind.OPT_OUT)
    numbers = np.array(target.bitmap.to_array(), dtype=np.uint64)
    batch = entries(
        op, list_name, kind, numbers, provenance=_provenance(settings, ""), days=target.days
    )
    with progress("publishing", len(numbers)) as advance:
        written = publish(_writer(settings, client, view), batch, _kinds(view), advance=advance)
    print(f"published {len(numbers):,} dated number(s) to {list_name}; version {written[-1]}")
    return EXIT_OK


# -- compact ----------------------------------------------------------------


def _compact(settings: Settings, key: SnapshotKey | None) -> int:
    if settings.data_dir is None or not settings.redis_url:
        raise ConfigError("compact needs --data-dir and --redis-url")
    client = _connect(settings)
    if settings.peer:
        _fetch_from_peers(settings, settings.data_dir)
    started = time.perf_counter()
    with progress("replaying the change log", None) as advance:
        current = materialize(settings.data_dir, client, settings.stream, advance, key)
    view = current.lists.view
    if current.entries == 0 and current.base is not None:
        print(f"nothing to compact: {current.base} is at the head of the log ({view.version})")
        return EXIT_OK
    path = write_snapshot(settings.data_dir, view, key)
    prune_snapshots(settings.data_dir, settings.snapshot_keep)
    keep_from = view.version
    if settings.trim_min_age:
        # Entry IDs are milliseconds: keep what replicas' own snapshots may not hold yet.
        keep_from = min(keep_from, Version(int((time.time() - settings.trim_min_age) * 1000), 0))
    with redis_errors(f"trimming change log {settings.stream}"):
        # MINID keeps the entry at the snapshot's version itself, and every later one.
        trimmed = client.xtrim(settings.stream, minid=str(keep_from), approximate=False)
    print(
        f"wrote {path} at version {view.version} ({current.entries:,} entries replayed, "
        f"{len(current.dead):,} unappliable) and trimmed {trimmed:,} entries from "
        f"{settings.stream} in {time.perf_counter() - started:.2f} s"
    )
    return EXIT_OK


def _fetch_from_peers(settings: Settings, data_dir: Path) -> None:
    """Fetch the newest snapshot of a --peer replica into an empty data directory."""
    from suppression.peersnapshot import PeerFetcher, fetch_if_empty, read_token

    token = read_token(settings.peer_token_file)
    fetched = fetch_if_empty(PeerFetcher(settings.peer, token=token), data_dir)
    if fetched is not None:
        print(f"fetched {fetched.path.name} ({fetched.size:,} bytes) from a peer")


def _reseed(settings: Settings, key: SnapshotKey | None) -> int:
    if settings.data_dir is None or not settings.redis_url:
        raise ConfigError("reseed needs --data-dir (the snapshots) and --redis-url (the log)")
    client = _connect(settings)
    with redis_errors(f"reseeding change log {settings.stream}"):
        epoch, path = reseed(
            client, settings.stream, settings.data_dir, force=settings.force, key=key
        )
    print(f"change log {settings.stream} now has epoch {epoch[:8]}, starting from {path}")
    return EXIT_OK


def _region(region: str) -> str:
    try:
        return validate_region(region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
