"""Scrub at scale: peak memory and rows/s on a very large lead file, plain and ``.gz``; and the
1,000,000-row file against another checkout's code (today's main) in the same run.

It builds the data set and lead rows of :mod:`bench_scrub` (the same mix of formats), as
``--distinct`` different 1,000,000-row blocks repeated until ``--rows`` rows (so about
``--distinct`` million distinct numbers), writes them to ``--folder`` (plain, and gzip -1),
runs ``suppression scrub`` in local mode on each, and reports the wall clock, rows/s and the
peak resident size of the scrub and of its largest worker (``ru_maxrss`` of a child process).
The files are deleted afterwards.

With ``--baseline PATH`` (a checkout of the code to compare with, e.g. ``git worktree add
--detach /tmp/base <commit>``), it also scrubs the 1,000,000-row file with both checkouts,
alternating, ``--runs`` times each, and checks that they write the same bytes. Each run is
reported as wall-clock seconds and CPU seconds (user + system, of the scrub and its worker
processes): on a shared machine the wall clock says what a user waits, the CPU what the code
costs. The same is done for a 2-line file, the command's fixed start-up cost, and each step
of the fast path is timed on its own (CPU, the least of three passes).

Usage: ``python benchmarks/bench_scrub_scale.py [--rows N] [--baseline PATH] [--no-append]``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import append_results, load_average, machine_description, markdown_table, print_table
from bench_scrub import build_data, build_leads

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("numpy", "pyroaring", "phonenumbers")
TARGET_MEMORY_MB = 1024
TARGET_RATE = 500_000
TARGET_MILLION_SECONDS = 1.5
_PROBE = (
    "import resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(time.perf_counter() - started, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)\n"
)


def scrub(code: Path, leads: Path, data: Path, out: Path) -> tuple[float, float, dict[str, Any]]:
    """Run the scrub of checkout ``code``; seconds, peak resident MB (largest process), summary.

    The summary gains ``cpu_seconds``: user + system time of the scrub and its workers.
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    command = [sys.executable, "-m", "suppression.cli", "scrub", str(leads), "--region", "US"]
    command += ["--data-dir", str(data), "--output-dir", str(out), "--log-level", "WARNING"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(code)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *command],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=code,
    )
    seconds, peak_kb, cpu = result.stdout.split()
    stem = leads.name.split(".")[0]
    summary = json.loads((out / f"{stem}.summary.json").read_text())
    summary["cpu_seconds"] = float(cpu)
    return float(seconds), int(peak_kb) / 1024, summary


def compile_tree(code: Path) -> None:
    """Byte-compile checkout ``code``'s package (``__pycache__``, ignored by git)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(code / "suppression")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def step_costs(leads: Path, data: Path, passes: int = 3) -> list[list[str]]:
    """Each step of the fast path, one after another in this process, on ``leads``.

    The scrub runs the scan, lookups, text checks and assembly in worker
    processes while the parent reads and writes; here they run in turn, so
    each can be timed: CPU seconds (``time.process_time``), the least of
    ``passes`` passes over the file, which damps other processes' load.
    "Move to and from a worker" is what pickling a block and its outputs
    costs (the pipes' copies come on top).
    """
    import pickle

    from pyroaring import BitMap64

    from suppression.checker import check_batch
    from suppression.e164 import Normalizer
    from suppression.scrub.answers import Answers, distinct_strings
    from suppression.scrub.data import local_view
    from suppression.scrub.distinct import distinct_with_inverse
    from suppression.scrub.fastpath import fits, scan_block
    from suppression.scrub.options import ScrubOptions
    from suppression.scrub.outputs import OutputSet, output_paths
    from suppression.scrub.reading import open_lead_file
    from suppression.scrub.shortcut import canonicalize
    from suppression.scrub.writing import ChunkWriter, Tally, assemble, write_layout

    best: dict[str, float] = {}
    rows = 0
    for _ in range(passes):
        clock: dict[str, float] = {}

        def timed(step: str, started: float, clock: dict[str, float] = clock) -> float:
            now = time.process_time()
            clock[step] = clock.get(step, 0.0) + now - started
            return now

        started = time.process_time()
        view = local_view(ScrubOptions(region="US", data_dir=data))
        started = timed("load the snapshot", started)
        normalizer = Normalizer()
        out = leads.parent / "steps"
        out.mkdir(exist_ok=True)
        rows = 0
        with (
            open_lead_file(leads) as lead,
            OutputSet(output_paths(leads, out), "utf-8") as outputs,
        ):
            writer = ChunkWriter(lead, outputs, BitMap64())
            tally = Tally()
            layout = ("utf-8", lead.delimiter, len(lead.header), 3, "US")
            writing = write_layout(lead)
            started = timed("open, header", started)
            while True:
                block = lead._next_bytes()
                if block is None:
                    break
                assert fits(block, "utf-8")
                started = timed("read bytes, check the block fits (parent)", started)
                task = pickle.loads(pickle.dumps((block, 2, layout, writing), protocol=5))
                started = timed("move to and from a worker (pickling)", started)
                chunk = scan_block(task[0], 2, *layout, checked=True)
                assert chunk is not None
                started = timed("scan: rows, fields, numbers (worker)", started)
                distinct, inverse = distinct_with_inverse(chunk.values[chunk.values != 0])
                _, distinct_masks = view.lookup(distinct)
                masks = distinct_masks[inverse]
                started = timed("look up numbers read by numpy (worker)", started)
                uids, texts = distinct_strings(chunk.texts)
                outcome = check_batch(view, (), canonicalize(texts, "US"), "US", (), normalizer)
                answers = Answers.empty(len(texts))
                answers.list_names = outcome.list_names
                answers.fill(
                    0, outcome.verdicts, outcome.masks, outcome.invalid_reasons, outcome.normalized
                )
                started = timed(f"check text phones (worker; {len(texts):,} here)", started)
                assembled = assemble(chunk, uids, answers, masks, writing)
                started = timed("assemble the outputs (worker)", started)
                assembled = pickle.loads(pickle.dumps(assembled, protocol=5))
                started = timed("move to and from a worker (pickling)", started)
                writer.write_assembled(assembled, tally)
                started = timed("count duplicates, write rows (parent)", started)
                outputs.mark()
                started = timed("flush for the checkpoint (parent)", started)
                rows += chunk.rows
        shutil.rmtree(out)
        merged: dict[str, float] = {}
        for step, seconds in clock.items():
            key = step.split(" (worker; ")[0] + (" (worker)" if "(worker; " in step else "")
            merged[key] = merged.get(key, 0.0) + seconds
        for key, seconds in merged.items():
            best[key] = min(best.get(key, seconds), seconds)
    total = sum(best.values())
    table = [
        [step, f"{seconds:.3f}", f"{seconds / rows * 1e6:.2f}"] for step, seconds in best.items()
    ]
    table.append(["all steps", f"{total:.3f}", f"{total / rows * 1e6:.2f}"])
    return table


def build_big(folder: Path, data: Path, rows: int, distinct: int) -> Path:
    """``rows`` rows: ``distinct`` different 1M-row blocks, repeated in turn."""
    listed = build_data(data, 2_000_000, 7)
    blocks = []
    for seed in range(distinct):
        block = folder / f"block-{seed}.csv"
        build_leads(block, 1_000_000, listed, 100 + seed)
        blocks.append(block)
    big = folder / "big.csv"
    written = 0
    with big.open("wb") as out:
        out.write(blocks[0].read_bytes().split(b"\n", 1)[0] + b"\n")
        while written < rows:
            for block in blocks:
                if written >= rows:
                    break
                with block.open("rb") as source:
                    source.readline()
                    shutil.copyfileobj(source, out, 16 << 20)
                written += 1_000_000
    for block in blocks:
        block.unlink()
    return big


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000, help="rows of the big file")
    parser.add_argument("--distinct", type=int, default=10, help="different 1M-row blocks")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--baseline", type=Path, help="another checkout to compare on 1M rows")
    parser.add_argument("--runs", type=int, default=3, help="1M-row runs per checkout")
    parser.add_argument("--skip-big", action="store_true", help="only the 1M-row comparison")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    sections: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="bench-scrub-scale-", dir=args.folder))
    try:
        data = root / "data"
        data.mkdir()
        started = time.perf_counter()
        if args.baseline is not None:
            listed = build_data(data, 2_000_000, 7)
            million = root / "leads.csv"
            build_leads(million, 1_000_000, listed, 7)
            tiny = root / "tiny.csv"
            tiny.write_text("id,phone\n1,+12125550123\n", encoding="utf-8")
            # As an installed package is: compiled. With PYTHONDONTWRITEBYTECODE set (this
            # session's environment) each run would otherwise compile every module it imports,
            # about 60 ms of the start-up, and the baseline too.
            for code in (args.baseline, REPO):
                compile_tree(code)
            load_before = load_average()
            times: dict[str, list[float]] = {"baseline": [], "this": []}
            cpus: dict[str, list[float]] = {"baseline": [], "this": []}
            peaks: dict[str, list[float]] = {"baseline": [], "this": []}
            starts: dict[str, list[tuple[float, float]]] = {"baseline": [], "this": []}
            for _ in range(args.runs):
                for name, code in (("baseline", args.baseline), ("this", REPO)):
                    seconds, peak, summary = scrub(code, million, data, root / name)
                    times[name].append(seconds)
                    cpus[name].append(summary["cpu_seconds"])
                    peaks[name].append(peak)
                    seconds, _, summary = scrub(code, tiny, data, root / f"{name}-tiny")
                    starts[name].append((seconds, summary["cpu_seconds"]))
            cost = step_costs(million, data)
            print_table("steps, one after another", ["step", "seconds", "µs/row"], cost)
            same = all(
                filecmp.cmp(
                    root / "baseline" / f"leads.{kind}.csv",
                    root / "this" / f"leads.{kind}.csv",
                    shallow=False,
                )
                for kind in ("clean", "suppressed", "invalid")
            )
            rows = [
                [
                    name,
                    f"{min(times[name]):.2f}-{max(times[name]):.2f}",
                    f"{min(cpus[name]):.2f}-{max(cpus[name]):.2f}",
                    f"{1_000_000 / max(times[name]):,.0f}-{1_000_000 / min(times[name]):,.0f}",
                    f"{max(peaks[name]):.0f}",
                    _span([wall for wall, _ in starts[name]])
                    + f" ({_span([cpu for _, cpu in starts[name]])})",
                ]
                for name in ("baseline", "this")
            ]
            headers = [
                "code",
                "seconds (best-worst)",
                "CPU seconds",
                "rows/s",
                "peak MB",
                "start-up: 2-line file, seconds (CPU)",
            ]
            print_table("scrub of 1,000,000 mixed rows, local", headers, rows)
            ratio = [b / t for b, t in zip(times["baseline"], times["this"], strict=True)]
            cpu_ratio = [b / t for b, t in zip(cpus["baseline"], cpus["this"], strict=True)]
            worst = max(times["this"])
            sections.append(
                "### 1,000,000 mixed rows, this branch against the baseline, alternating\n\n"
                + markdown_table(headers, rows)
                + f"\n\nSpeed-up per pair, wall clock: {', '.join(f'{r:.2f}x' for r in ratio)}; "
                f"CPU: {', '.join(f'{r:.2f}x' for r in cpu_ratio)}. Outputs "
                f"{'identical, byte for byte' if same else 'DIFFER'}. Load average before "
                f"{load_before}, after {load_average()}. Target <= {TARGET_MILLION_SECONDS} s: "
                f"{'met' if worst <= TARGET_MILLION_SECONDS else 'NOT met'} (worst {worst:.2f} s, "
                f"best {min(times['this']):.2f} s). Both checkouts byte-compiled first "
                "(`compileall`), as an installed package is.\n\n"
                "What each step costs on this file (fast path, each step run in turn in one "
                "process, CPU seconds, the least of three passes; the scrub runs the worker steps "
                "in two processes while the parent reads and writes):\n\n"
                + markdown_table(["step", "seconds", "µs/row"], cost)
                + "\n"
            )
        if not args.skip_big:
            big = build_big(root, data, args.rows, args.distinct)
            packed = root / "big.csv.gz"
            with packed.open("wb") as out:
                subprocess.run(["gzip", "-1", "-c", str(big)], check=True, stdout=out)
            print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
            rows = []
            load_before = load_average()
            verdicts = []
            for leads in (big, packed):
                size = leads.stat().st_size
                seconds, peak, summary = scrub(REPO, leads, data, root / "out")
                rate = summary["rows_in"] / seconds
                rows.append(
                    [
                        leads.name,
                        f"{size / 1e9:.2f} GB",
                        f"{summary['rows_in']:,}",
                        f"{seconds:.0f}",
                        f"{summary['cpu_seconds']:.0f}",
                        f"{rate:,.0f}",
                        f"{peak:.0f}",
                    ]
                )
                verdicts.append(
                    f"{leads.name}: memory < {TARGET_MEMORY_MB} MB "
                    f"{'met' if peak < TARGET_MEMORY_MB else 'NOT met'} ({peak:.0f} MB); "
                    f">= {TARGET_RATE:,} rows/s {'met' if rate >= TARGET_RATE else 'NOT met'} "
                    f"({rate:,.0f})"
                )
                shutil.rmtree(root / "out")
            headers = [
                "file",
                "size",
                "rows",
                "seconds",
                "CPU seconds",
                "rows/s",
                "peak MB (largest process)",
            ]
            print_table(f"scrub of {args.rows:,} rows, local", headers, rows)
            sections.append(
                f"### {args.rows:,} rows ({args.distinct} different 1,000,000-row blocks of the "
                "bench_scrub mix, repeated)\n\n"
                + markdown_table(headers, rows)
                + f"\n\nTargets: {'; '.join(verdicts)}. Load average before {load_before}, "
                f"after {load_average()}.\n"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not args.no_append and sections:
        append_results(
            "bench_scrub_scale.py, 1,000,000 rows against a baseline"
            if args.skip_big
            else f"bench_scrub_scale.py, {args.rows:,} rows",
            machine_description(PACKAGES),
            "\n".join(sections),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
