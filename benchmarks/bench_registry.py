"""The full registry end to end: write a download file, import it, serve it, start a peer from it.

1. Writes ``--size`` (260 million) registry-shaped numbers as a ten-digit
   registry download file (one number per line, as the US registry ships it).
2. Imports it with ``suppression-loader import`` into a data directory: wall
   time and peak memory (the child's ``ru_maxrss``). Target: at most 2 GB.
3. Serves it with ``suppression serve`` (one process): time from start to
   SERVING (target at most 3 s), resident memory once serving (at most 450 MB),
   and the peak while loading (at most 1.2 times the steady state). Repeated
   ``--starts`` times.
4. Serves it with ``--workers 2``: PSS of the parent and both workers (at most
   450 MB in all: the workers share the bitmaps copy-on-write).
5. Starts a replica with an empty data directory and ``--peer`` the server of
   step 3: time to SERVING, the snapshot fetched over gRPC (at most 30 s).

The snapshot file stays in the page cache between steps (this benchmark does
not drop the machine's caches), so "cold start" means a new process, not a cold disk.

Usage: ``.venv/bin/python benchmarks/bench_registry.py [--size 260000000] [--starts 3] [--record]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    append_results,
    load_average,
    machine_description,
    markdown_table,
    print_table,
    start_serve,
    wait_serving,
)

from suppression.demo import registry_shaped

REPO = Path(__file__).resolve().parent.parent
MB = 1 << 20
TARGETS = {
    "import peak MB": 2048,
    "serving RSS MB": 450,
    "workers PSS MB": 450,
    "load peak / steady": 1.2,
    "start to SERVING s": 3.0,
    "peer start to SERVING s": 30.0,
}


def write_registry_file(path: Path, size: int, seed: int) -> float:
    """Ten digits and a newline per number, written in chunks; returns seconds."""
    started = time.perf_counter()
    numbers = registry_shaped(size, seed) - np.uint64(10_000_000_000)
    powers = (10 ** np.arange(9, -1, -1, dtype=np.uint64)).astype(np.uint64)
    with path.open("wb") as out:
        for start in range(0, len(numbers), 2_000_000):
            chunk = numbers[start : start + 2_000_000]
            grid = np.empty((len(chunk), 11), dtype=np.uint8)
            grid[:, :10] = (chunk[:, None] // powers) % np.uint64(10) + np.uint64(48)
            grid[:, 10] = ord("\n")
            grid.tofile(out)
    del numbers
    return time.perf_counter() - started


_PEAK_REPORTER = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('VMHWM_KB', line.split()[1], flush=True)\n"
    "atexit.register(report)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)
"""Runs a module and prints its VmHWM at exit. Not ru_maxrss: Linux carries the forking
parent's peak across exec into it, and this benchmark's parent holds gigabytes."""


def run_measured(module: str, *args: str) -> tuple[float, int, str]:
    """Run ``python -m module args`` to its end: (seconds, peak RSS in MB, output)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_REPORTER, module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=child_env(),
        check=False,
    )
    seconds = time.perf_counter() - started
    output = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{output[-3000:]}")
    peak_kb = max(
        int(line.split()[1]) for line in output.splitlines() if line.startswith("VMHWM_KB")
    )
    return seconds, peak_kb // 1024, output


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def serve(data: Path, *extra: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    process, port = start_serve(["--data-dir", str(data), *extra], log=log)
    return process, f"127.0.0.1:{port}"


def status_mb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def pss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) // 1024
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def verdict(name: str, worst: float) -> str:
    target = TARGETS[name]
    return "met" if worst <= target else f"**MISSED** ({worst:,.2f} > {target:,})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=260_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    args = parser.parse_args(argv)
    before = load_average()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-registry-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[float]] = {name: [] for name in TARGETS}
    notes: list[str] = []
    try:
        registry = work / "registry.txt"
        seconds = write_registry_file(registry, args.size, args.seed)
        notes.append(
            f"registry file: {registry.stat().st_size / MB:,.0f} MB, {args.size:,} numbers, "
            f"written in {seconds:.1f} s"
        )
        print(notes[-1], flush=True)

        data = work / "data"
        seconds, peak, _ = run_measured(
            "loader.cli", "import", str(registry),
            "--list-name", "national", "--kind", "registry", "--create-list",
            "--input-format", "ten_digit", "--data-dir", str(data),
        )  # fmt: skip
        figures["import peak MB"].append(peak)
        snapshot = next(data.glob("snapshot-*.snap"))
        notes.append(
            f"import: {seconds:.1f} s ({args.size / seconds / 1e6:.1f} million numbers/s), "
            f"snapshot {snapshot.stat().st_size / MB:,.0f} MB"
        )
        print(notes[-1], flush=True)
        registry.unlink()  # 2.9 GB: not needed any more

        peer_target = ""
        server = None
        for attempt in range(args.starts):
            process, target = serve(data, log=work / f"serve-{attempt}.log")
            figures["start to SERVING s"].append(
                wait_serving(process, target, timeout=120, poll=0.01)
            )
            time.sleep(1.0)  # let the first snapshot-age scrape and GC settle
            steady = status_mb(process.pid, "VmRSS")
            peak = status_mb(process.pid, "VmHWM")
            figures["serving RSS MB"].append(steady)
            figures["load peak / steady"].append(peak / steady)
            print(f"serve {attempt + 1}: {figures['start to SERVING s'][-1]:.2f} s, "
                  f"RSS {steady} MB, peak {peak} MB", flush=True)  # fmt: skip
            if attempt == args.starts - 1:
                server, peer_target = process, target
            else:
                stop(process)

        assert server is not None
        for attempt in range(args.starts):
            empty = work / f"peer-{attempt}"
            process, target = serve(empty, "--peer", peer_target, log=work / f"peer-{attempt}.log")
            waited = wait_serving(process, target, timeout=300, poll=0.01)
            figures["peer start to SERVING s"].append(waited)
            print(f"peer {attempt + 1}: {figures['peer start to SERVING s'][-1]:.2f} s",
                  flush=True)  # fmt: skip
            stop(process)
            shutil.rmtree(empty, ignore_errors=True)
        stop(server)

        process, target = serve(data, "--workers", "2", log=work / "workers.log")
        wait_serving(process, target, timeout=120, poll=0.01)
        time.sleep(2.0)
        pids = [process.pid, *children(process.pid)]
        figures["workers PSS MB"].append(sum(pss_mb(pid) for pid in pids))
        notes.append(
            f"--workers 2: {len(pids)} processes, PSS "
            + ", ".join(f"{pss_mb(pid)} MB" for pid in pids)
        )
        print(notes[-1], flush=True)
        stop(process)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    after = load_average()
    rows = []
    for name, values in figures.items():
        best, worst = min(values), max(values)
        shown = f"{worst:,.2f}" if best == worst else f"{best:,.2f}-{worst:,.2f}"
        rows.append([name, shown, f"{TARGETS[name]:,}", verdict(name, worst)])
    headers = ["Figure", "measured (best-worst)", "target", "verdict (worst)"]
    print_table(f"The registry end to end, {args.size:,} numbers", headers, rows)
    if args.record:
        body = "\n".join(
            [
                markdown_table(headers, rows),
                "",
                *(f"- {note}." for note in notes),
                "- Starts are new processes with the snapshot in the page cache (caches were "
                "not dropped); the peer start fetches the whole snapshot over loopback gRPC, "
                "writes and fsyncs it, then loads it.",
                f"- This process's own peak (generation): "
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MB.",
                f"- Load average before: {before}; after: {after}.",
            ]
        )
        append_results(
            f"bench_registry.py, {args.size:,} numbers end to end",
            machine_description(["pyroaring", "numpy", "grpcio"]),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
