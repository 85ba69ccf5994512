"""Dated lists in the replica's data: memory, snapshot size, load and apply against a plain list.

For each ``--sizes`` (registry-shaped numbers, days spread over two and a half
years), the same numbers as a plain list and as a list with a day per number
(``ListView.days``: the list's bitmap plus a ``uint16`` per number):

- **memory**: bytes per number of the containers (``get_statistics``) plus the
  days, and the resident memory a fresh process gains loading the snapshot
  (``/proc/self/statm`` before and after ``read_snapshot``, in a child process
  per file, ``--loads`` times; best and worst);
- **snapshot**: file bytes per number, and the load time (in the same child);
- **apply**: ``SuppressionLists.apply`` of one add of ``--batch`` numbers (dated
  for the dated list), the follower's cost per batch, ``--repeats`` times.

Prints a table and appends a dated section to RESULTS.md (``--no-record`` to
skip). Usage: ``.venv/bin/python benchmarks/bench_dated.py [--sizes 1000000
10000000] [--batch 1000] [--repeats 5] [--loads 3] [--no-record]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import append_results, load_average, machine_description, markdown_table, print_table
from pyroaring import BitMap64

from suppression.demo import registry_shaped
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists
from suppression.policy.dated import DatedList
from suppression.snapshot import write_snapshot

PACKAGES = ("numpy", "pyroaring")
DAY_SPAN = 913  # two and a half years of days
FIRST_DAY = 19_700

_CHILD = """
import json, os, sys, time
from pathlib import Path
from suppression.snapshot import read_snapshot
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
before = rss()
started = time.perf_counter()
snapshot = read_snapshot(Path(sys.argv[1]))
seconds = time.perf_counter() - started
print(json.dumps({"rss": rss() - before, "seconds": seconds}))
"""


def build(
    size: int, seed: int, shape: str = "registry"
) -> tuple[SuppressionLists, SuppressionLists]:
    """The plain and the dated lists over the same numbers."""
    rng = np.random.default_rng(seed)
    if shape == "registry":
        numbers = np.sort(registry_shaped(size, seed=seed))
    else:  # consents and disconnections: a sample spread over the whole US numbering space
        numbers = np.unique(12_000_000_000 + rng.integers(0, 7_999_999_999, size, dtype=np.int64))
        numbers = numbers.astype(np.uint64)
    days = rng.integers(FIRST_DAY, FIRST_DAY + DAY_SPAN, size=len(numbers)).astype(np.uint16)
    bitmap = BitMap64(numbers.tolist())
    info = [ListInfo("ebr", ListKind.CAMPAIGN)]
    plain = SuppressionLists({"ebr": bitmap}, info)
    dated_bitmap = bitmap.copy()
    dated = SuppressionLists(
        {"ebr": dated_bitmap}, info, days={"ebr": DatedList(dated_bitmap, days)}
    )
    return plain, dated


def load_in_child(path: Path, loads: int) -> tuple[list[int], list[float]]:
    here = Path(__file__).resolve().parent.parent
    rss, seconds = [], []
    for _ in range(loads):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            check=True,
            capture_output=True,
            text=True,
            cwd=here,
        ).stdout
        figures = json.loads(out)
        rss.append(int(figures["rss"]))
        seconds.append(float(figures["seconds"]))
    return rss, seconds


def apply_ms(
    lists: SuppressionLists, batch: int, repeats: int, dated: bool, seed: int
) -> list[float]:
    rng = np.random.default_rng(seed + 1)
    times = []
    for _ in range(repeats):
        numbers = 12_000_000_000 + rng.choice(9_999_999_999 - 2_000_000_000, batch, replace=False)
        values = tuple(int(n) for n in numbers)
        days = tuple(int(d) for d in rng.integers(FIRST_DAY, FIRST_DAY + DAY_SPAN, batch))
        change = Change(Op.ADD, "ebr", values, kind=ListKind.CAMPAIGN, days=days if dated else ())
        started = time.perf_counter()
        lists.apply([change])
        times.append((time.perf_counter() - started) * 1000)
    return times


def span(values: list[float], unit: str = "", digits: int = 2) -> str:
    low, high = min(values), max(values)
    return (
        f"{low:,.{digits}f}-{high:,.{digits}f}{unit}" if high != low else f"{low:,.{digits}f}{unit}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shape",
        choices=("registry", "spread"),
        default="registry",
        help="registry-shaped numbers (dense blocks), or numbers spread over the US space",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    before_load = load_average()
    headers = [
        "list",
        "numbers",
        "memory B/number (containers + days)",
        "RSS gained loading, B/number",
        "snapshot B/number",
        "load s",
        f"apply {args.batch:,} ms",
    ]
    rows: list[list[str]] = []
    ratios: list[str] = []
    with tempfile.TemporaryDirectory() as temp:
        for size in args.sizes:
            plain, dated = build(size, args.seed, args.shape)
            figures = {}
            for name, lists, is_dated in (("plain", plain, False), ("dated", dated, True)):
                view = lists.view
                count = len(view.bitmaps["ebr"])
                memory = view.list_bytes("ebr") / count
                path = write_snapshot(Path(temp) / f"{name}-{size}", view)
                file_bytes = path.stat().st_size / count
                rss, seconds = load_in_child(path, args.loads)
                applied = apply_ms(lists, args.batch, args.repeats, is_dated, args.seed)
                figures[name] = (memory, [r / count for r in rss], file_bytes, seconds, applied)
                rows.append(
                    [
                        name,
                        f"{count:,}",
                        f"{memory:.2f}",
                        span([r / count for r in rss]),
                        f"{file_bytes:.2f}",
                        span(seconds, digits=3),
                        span(applied, digits=1),
                    ]
                )
            p, d = figures["plain"], figures["dated"]
            ratios.append(
                f"- {size:,} numbers, dated over plain: memory {d[0] / p[0]:.2f}x "
                f"(+{d[0] - p[0]:.2f} B/number); RSS {min(d[1]) / max(p[1]):.2f}-"
                f"{max(d[1]) / min(p[1]):.2f}x; snapshot {d[2] / p[2]:.2f}x; load "
                f"{min(d[3]) / max(p[3]):.2f}-{max(d[3]) / min(p[3]):.2f}x; apply "
                f"{min(d[4]) / max(p[4]):.1f}-{max(d[4]) / min(p[4]):.1f}x."
            )
    print_table("Dated list against a plain list of the same numbers", headers, rows)
    for line in ratios:
        print(line)
    if not args.no_record:
        body = "\n".join(
            [
                markdown_table(headers, rows),
                "",
                *ratios,
                f"- Days uniformly over {DAY_SPAN} days; numbers: {args.shape} "
                f"(registry: suppression.demo.registry_shaped; spread: uniform over +1 200 "
                f"to +1 999; seed {args.seed}). RSS and load time: a "
                f"fresh child process per load, {args.loads} loads per file (best-worst). "
                f"Apply: one add of {args.batch:,} new numbers, {args.repeats} times.",
                f"- Load average before: {before_load}; after: {load_average()}.",
            ]
        )
        sizes = ", ".join(f"{size:,}" for size in args.sizes)
        append_results(
            f"bench_dated.py, dated lists against plain lists ({sizes} {args.shape} numbers)",
            machine_description(PACKAGES),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
