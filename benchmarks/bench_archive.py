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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=20_000, help="opt-out entries")
    parser.add_argument("--bulk", type=int, default=5, help="entries of 100,000 numbers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    bytes_per_change = 0.0
    bytes_per_bulk = 0.0
    with redis_server() as server:
        client = server.client(socket_timeout=30)
        last = fill_stream(client, args.changes, args.bulk)
        for round_number in range(1, args.rounds + 1):
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
                        sizes = _sizes(Path(directory), args.changes)
                        bytes_per_change, bytes_per_bulk = sizes
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
    headers = [
        "Round",
        "plain s",
        "archive s",
        "archive+fsync s",
        "ratio",
        "ratio fsync",
    ]
    title = (
        f"Follower replay of {args.changes:,} opt-outs and {args.bulk} entries of 100,000 numbers"
    )
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
    print_table(
        "Archive append of a one-entry batch (a quiet follower's read)", single_headers, single_rows
    )
    if args.record:
        body = (
            f"{title}; redis {redis_server_version()}; load average {load_average()}.\n\n"
            f"{markdown_table(headers, rows)}\n\n{sizes_text}\n\n"
            f"{markdown_table(single_headers, single_rows)}\n"
        )
        append_results("bench_archive.py", machine_description(PACKAGES), body)


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
