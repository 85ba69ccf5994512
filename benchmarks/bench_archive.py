"""Change archive benchmark: bytes per change, and what archiving costs the change-log follower.

One run, against a throwaway redis-server:

- a stream of ``--changes`` opt-outs (one number per entry, source, actor and
  evidence set, as the Suppress RPC writes them), plus ``--bulk`` registry-style
  entries of 100,000 numbers each;
- the real ``ChangeLogFollower`` replays the whole stream into empty lists,
  from the first XREAD until it reaches the last entry, three ways in the
  same run, interleaved round by round: without an archive, archiving
  without fsync, archiving with an fsync per batch (the default);
- the ratio of each archiving replay's time to the plain replay's time of the
  same round is the follower's cost; the archive's bytes divided by the changes
  it holds is bytes per change.

Usage: ``python benchmarks/bench_archive.py [--changes 20000] [--bulk 5] [--rounds 3] [--record]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis
from _common import (
    append_results,
    load_average,
    machine_description,
    markdown_table,
    percentiles_us,
    print_table,
    redis_server,
    redis_server_version,
    time_each_ns,
)
from pyroaring import BitMap64

from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.changelog.follower import ChangeLogFollower
from suppression.demo import registry_shaped
from suppression.entries import Entry, encode_entry, entries_for
from suppression.lists import ListKind, Op, SuppressionLists, Version
from suppression.writer import ChangeLogWriter

STREAM = "bench:deltas"
PACKAGES = ("redis", "pyroaring", "numpy")
MODES = ("plain", "archive, no fsync", "archive, fsync")


def fill_stream(client: redis.Redis, changes: int, bulk: int) -> Version:
    """Write the opt-outs and bulk entries; the last entry's ID."""
    writer = ChangeLogWriter(client, STREAM, "bench")
    entries: list[Entry] = []
    for index in range(changes):
        number = 8613800000000 + index * 7919
        entries += entries_for(
            Op.ADD,
            "optout",
            ListKind.OPT_OUT,
            [number],
            source="in_call",
            actor=f"agent-{index % 300}",
            evidence=f"recording-2026-11-25-{index:08d}",
        )
    numbers = registry_shaped(bulk * 100_000, seed=5) if bulk else []
    entries += entries_for(Op.ADD, "registry", ListKind.REGISTRY, numbers, source="registry")
    last = Version()
    for start in range(0, len(entries), 500):
        last = writer.write(entries[start : start + 500])[-1]
    return last


def replay(client: redis.Redis, last: Version, archive: ChangeArchive | None) -> float:
    """Seconds for a follower to replay the whole stream into empty lists."""
    lists = SuppressionLists()
    follower = ChangeLogFollower(
        lists,
        client,
        stream=STREAM,
        dead_letter_stream=STREAM + ":dead",
        max_staleness=60.0,
        archive=archive,
    )
    started = time.perf_counter()
    follower.start()
    if not follower.wait_applied(last, 600.0):
        raise RuntimeError("the follower did not reach the end of the stream")
    seconds = time.perf_counter() - started
    follower.stop()
    return seconds


def single_appends(fsync: bool, samples: int) -> list[float]:
    """p50 and p99 µs of appending one opt-out as one batch, as a quiet follower does."""
    entry = entries_for(
        Op.ADD, "optout", ListKind.OPT_OUT, [8613800138000], source="in_call",
        actor="agent-7", evidence="recording-2026-11-25-00000001",
    )[0]  # fmt: skip
    fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
    fields[b"epoch"], fields[b"seq"] = b"0" * 32, b"1"
    view = SuppressionLists().view
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as directory:
        archive = ChangeArchive(ArchiveOptions(Path(directory), fsync=fsync))
        archive.open()
        archive.start(view)
        counter = iter(range(1, 10**9))

        def append(_: object) -> None:
            index = next(counter)
            fields[b"seq"] = str(index).encode()
            archive.append([(f"{index}-0".encode(), fields)], view)

        samples_ns = time_each_ns(append, [None], samples, warmup=50)
        archive.close()
    return percentiles_us(samples_ns)


def as_of_costs(registry: int, per_day: int, days: int, segment_bytes: int) -> list[list[str]]:
    """Seconds to rebuild the lists as of a day-old and a month-old version.

    An archive is filled as a replica would fill it: a start base holding a
    registry-shaped list, then ``per_day`` opt-outs a day for ``days`` days,
    with a regular snapshot written every day (the Snapshotter writes one every
    five minutes and keeps three; the archive links the newest when a segment
    closes). Then ``view_as_of`` is timed at one day and at thirty days before
    the end, from a cold reader each time.
    """
    from suppression.archive import ArchiveReader
    from suppression.archive.asof import view_as_of
    from suppression.lists import ListInfo
    from suppression.snapshot import write_snapshot

    day_ms = 86_400_000
    start_ms = 1_760_000_000_000
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as directory:
        root = Path(directory)
        snapshots = root / "data"
        lists = SuppressionLists(
            {"registry": BitMap64(registry_shaped(registry, seed=3))},
            [ListInfo("registry", ListKind.REGISTRY), ListInfo("optout", ListKind.OPT_OUT)],
            Version(start_ms, 0),
        )
        archive = ChangeArchive(
            ArchiveOptions(root / "archive", segment_bytes, fsync=False, snapshots=snapshots)
        )
        archive.open()
        archive.start(lists.view)
        template = entries_for(
            Op.ADD, "optout", ListKind.OPT_OUT, [8613800138000], source="in_call",
            actor="agent-7", evidence="recording-2026-11-25-00000001",
        )[0]  # fmt: skip
        fields = {k.encode(): v.encode() for k, v in encode_entry(template).items()}
        seq = 0
        for day in range(days):
            batch = []
            numbers = []
            for index in range(per_day):
                seq += 1
                ms = start_ms + day * day_ms + index * (day_ms // per_day) + 1
                number = 8613800000000 + seq * 7919
                entry_fields = dict(fields)
                entry_fields[b"numbers"] = str(number).encode()
                batch.append((f"{ms}-0".encode(), entry_fields))
                numbers.append(number)
            for first in range(0, len(batch), 1000):
                archive.append(batch[first : first + 1000], lists.view)
            lists.apply(
                [entries_for(Op.ADD, "optout", ListKind.OPT_OUT, numbers, source="in_call")[0]
                 .to_change()],
                version=Version.parse(batch[-1][0].decode()),
            )  # fmt: skip
            write_snapshot(snapshots, lists.view)
            for old in sorted(snapshots.glob("*.snap"))[:-3]:
                old.unlink()
        archive.close()
        end = lists.version
        warm = ArchiveReader(root / "archive")
        warm.catalog()  # a serving replica keeps its reader: indexes and the tail read once
        for label, age in (("a day old", 1), ("a month old", 30)):
            at = Version(end.ms - age * day_ms, 0)
            timings = []
            for reader in (ArchiveReader(root / "archive"), warm):
                started = time.perf_counter()
                view = view_as_of(reader, at, snapshots=snapshots)
                timings.append(time.perf_counter() - started)
            rows.append(
                [
                    label,
                    f"{timings[0]:.2f}",
                    f"{timings[1]:.2f}",
                    f"{len(view.bitmaps['optout']):,}",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=20_000, help="opt-out entries")
    parser.add_argument("--bulk", type=int, default=5, help="entries of 100,000 numbers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--registry", type=int, default=10_000_000, help="as-of: registry size")
    parser.add_argument("--per-day", type=int, default=20_000, help="as-of: opt-outs a day")
    parser.add_argument("--days", type=int, default=31, help="as-of: days archived")
    parser.add_argument(
        "--segment-bytes", type=int, default=64 * 1024 * 1024, help="as-of: segment size"
    )
    parser.add_argument("--skip-follower", action="store_true", help="only the as-of part")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    body = ""
    if not args.skip_follower:
        body += follower_section(args.changes, args.bulk, args.rounds)
    asof_rows = as_of_costs(args.registry, args.per_day, args.days, args.segment_bytes)
    asof_headers = ["Re-check as of", "cold reader s", "serving replica s", "opt-outs then"]
    asof_title = (
        f"Lists rebuilt as of an earlier version: registry of {args.registry:,}, "
        f"{args.per_day:,} opt-outs a day for {args.days} days, a snapshot a day"
    )
    print_table(asof_title, asof_headers, asof_rows)
    body += f"\n{asof_title}.\n\n{markdown_table(asof_headers, asof_rows)}\n"
    if args.record:
        body = f"Load average {load_average()}; redis {redis_server_version()}.\n\n" + body
        append_results("bench_archive.py", machine_description(PACKAGES), body)


def follower_section(changes: int, bulk: int, rounds: int) -> str:
    """Run the follower comparison and the single-append timings; their markdown."""
    rows = []
    bytes_per_change = 0.0
    bytes_per_bulk = 0.0
    with redis_server() as server:
        client = server.client(socket_timeout=30)
        last = fill_stream(client, changes, bulk)
        for round_number in range(1, rounds + 1):
            times: dict[str, float] = {}
            for mode in MODES:
                with tempfile.TemporaryDirectory(prefix="bench-archive-") as directory:
                    archive = None
                    if mode != "plain":
                        archive = ChangeArchive(
                            ArchiveOptions(Path(directory), fsync=mode == "archive, fsync")
                        )
                        archive.open()
                        archive.start(SuppressionLists().view)
                    times[mode] = replay(client, last, archive)
                    if archive is not None:
                        archive.close()
                        bytes_per_change, bytes_per_bulk = _sizes(Path(directory), changes)
            plain = times["plain"]
            rows.append(
                [
                    str(round_number),
                    f"{plain:.2f}",
                    f"{times['archive, no fsync']:.2f}",
                    f"{times['archive, fsync']:.2f}",
                    f"{times['archive, no fsync'] / plain:.2f}x",
                    f"{times['archive, fsync'] / plain:.2f}x",
                ]
            )
    headers = ["Round", "plain s", "archive s", "archive+fsync s", "ratio", "ratio fsync"]
    title = f"Follower replay of {changes:,} opt-outs and {bulk} entries of 100,000 numbers"
    print_table(title, headers, rows)
    sizes_text = (
        f"Bytes per change: {bytes_per_change:,.0f} for a single opt-out entry; "
        f"{bytes_per_bulk:,.1f} per number in an entry of 100,000 numbers."
    )
    print(sizes_text)
    single_rows = []
    for fsync in (False, True):
        p50, p99 = single_appends(fsync, 2000)
        single_rows.append(["fsync" if fsync else "no fsync", f"{p50:,.1f}", f"{p99:,.1f}"])
    single_headers = ["One opt-out appended", "p50 µs", "p99 µs"]
    print_table("Archive append of a one-entry batch", single_headers, single_rows)
    return (
        f"{title}.\n\n{markdown_table(headers, rows)}\n\n{sizes_text}\n\n"
        f"{markdown_table(single_headers, single_rows)}\n"
    )


def _sizes(directory: Path, changes: int) -> tuple[float, float]:
    """Bytes per opt-out record and per bulk number, from the records themselves."""
    from suppression.archive.segment import scan_records

    small = large = 0
    small_count = large_numbers = 0
    for path in sorted(directory.glob("segment-*.seg")):
        records, _ = scan_records(path.read_bytes())
        for record in records:
            size = len(record.body) + 9
            if b'"list":"registry"' in record.body:
                large += size
                large_numbers += record.body.count(b",") + 1
            elif record.kind == 1:
                small += size
                small_count += 1
    return small / max(1, small_count), large / max(1, large_numbers)


if __name__ == "__main__":
    main()
