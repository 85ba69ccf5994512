"""A scrub killed at any point resumes with --resume to the very outputs of an uninterrupted one.

Also: a resume across a newer snapshot checks the rows done before again, and
a scrub's memory does not grow with its input (measured as a child process's
peak resident size; the 50-million-row figures are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from tests.conftest import REPO
from tests.samples import scrub_outputs

KINDS = ("clean", "suppressed", "invalid")
PHONES = (
    "+1202555{:04d}",
    "(202) 555-{:04d}",
    "202.555.{:04d}",
    "+1 212 555 {:04d}",
    "{:d}",
)


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "suppression.cli", "scrub", *args, "--log-level", "WARNING"]


def write_leads(path: Path, rows: int, seed: int = 3) -> None:
    """Rows with quotes, a field over two lines now and then, blank lines and repeats."""
    rng = random.Random(seed)
    with path.open("w", newline="") as out:
        out.write("id,name,phone,notes\r\n")
        for index in range(rows):
            phone = PHONES[index % len(PHONES)].format(rng.randrange(10_000))
            note = ""
            if index % 13 == 0:
                note = '"said ""no"",\r\ntwice"'
            elif index % 17 == 0:
                note = 'a "quote'
            out.write(f"{index},Lead {index},{phone},{note}\r\n")
            if index % 1_000 == 0:
                out.write("\r\n")


def write_data(folder: Path, listed: list[int], version: Version) -> None:
    lists = SuppressionLists(
        {"internal": BitMap64(listed)}, [ListInfo("internal", ListKind.OPT_OUT)], version
    )
    write_snapshot(folder, lists.view)


def outputs(folder: Path) -> dict[str, bytes]:
    return scrub_outputs(folder, KINDS)


def summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "leads.summary.json").read_text())
    for varying in ("seconds", "rows_per_second", "outputs", "resumed_at_line", "rechecked_lines"):
        data.pop(varying)
    return data


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, env=environment(), cwd=REPO, timeout=120
    )


def checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob(".leads.checkpoint.*.json"))


def one_list_scrub(folder: Path, rows: int) -> list[str]:
    """The arguments of a scrub of ``rows`` generated leads in ``folder``, outputs there too."""
    source = folder / "leads.csv"
    write_leads(source, rows)
    (folder / "internal.txt").write_text("+12025550001\n")
    args = [str(source), "--list", f"internal={folder / 'internal.txt'}", "--region", "US"]
    return [*args, "--processes", "1", "--chunk-rows", "2000", "--output-dir", str(folder)]


def kill_after_a_checkpoint(args: list[str], folder: Path, extra_delay: float) -> None:
    """Start a scrub, SIGKILL it once it has saved a checkpoint (plus ``extra_delay``)."""
    process = subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        mine = folder / f".leads.checkpoint.{process.pid}.json"
        while not mine.exists():
            assert process.poll() is None, "the scrub ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(extra_delay)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL, "the scrub finished before it was killed"


def test_a_scrub_killed_at_random_points_resumes_to_the_same_outputs(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    write_leads(source, 120_000)
    (tmp_path / "internal.txt").write_text("+12025550001\n+12125551234\n+12025559999\n")
    base = [str(source), "--list", f"internal={tmp_path / 'internal.txt'}", "--region", "US"]
    base += ["--processes", "1", "--chunk-rows", "2000"]
    clean_run = tmp_path / "whole"
    clean_run.mkdir()
    assert run(*base, "--output-dir", str(clean_run)).returncode == 0
    rng = random.Random()
    for attempt in range(3):
        folder = tmp_path / f"killed-{attempt}"
        folder.mkdir()
        args = [*base, "--output-dir", str(folder)]
        if attempt == 2:  # gzip members end at checkpoints: a cut file stays valid
            args.append("--compress")
        delay = rng.uniform(0, 0.25)
        kill_after_a_checkpoint(args, folder, delay)
        assert not (folder / "leads.summary.json").exists()
        # Killed once more, part way through the resumed run.
        kill_after_a_checkpoint([*args, "--resume"], folder, rng.uniform(0, 0.1))
        resumed = run(*args, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert outputs(folder) == outputs(clean_run), f"after a kill {delay:.3f} s in"
        assert summary(folder) == summary(clean_run)
        report = json.loads((folder / "leads.summary.json").read_text())
        assert report["resumed_at_line"] > 2
        suffix = ".gz" if attempt == 2 else ""
        assert sorted(path.name for path in folder.iterdir()) == sorted(
            path.name + suffix if path.suffix == ".csv" else path.name
            for path in clean_run.iterdir()
        ), "no hidden file is left behind"


def test_a_checkpoint_half_written_at_the_kill_is_gone_after_the_resume(tmp_path: Path) -> None:
    """Killed between writing its next checkpoint and renaming it, a scrub leaves a .new."""
    args = one_list_scrub(tmp_path, 60_000)
    kill_after_a_checkpoint(args, tmp_path, 0.0)
    (killed,) = checkpoints(tmp_path)
    partial = killed.with_name(killed.name + ".new")  # the same dead scrub's next one
    partial.write_text(killed.read_text()[:10])
    resumed = run(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "leads.summary.json").read_text())["resumed_at_line"] > 2
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_an_interrupted_scrub_says_where_resume_continues(tmp_path: Path) -> None:
    args = one_list_scrub(tmp_path, 120_000)
    process = subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not checkpoints(tmp_path):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 2
    (checkpoint,) = checkpoints(tmp_path)
    line = json.loads(checkpoint.read_text())["next_line"]
    assert stderr.strip() == (
        "suppression: error: scrub interrupted by SIGINT; no output was written; run it again "
        f"with --resume to continue from line {line:,}"
    )
    assert not (tmp_path / "leads.clean.csv").exists()
    assert run(*args, "--resume").returncode == 0
    assert json.loads((tmp_path / "leads.summary.json").read_text())["resumed_at_line"] == line


def test_a_resume_across_a_newer_snapshot_checks_the_done_rows_again(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    write_leads(source, 120_000)
    data = tmp_path / "data"
    data.mkdir()
    write_data(data, [12025550001], Version(1_700_000_000_000, 1))
    base = [str(source), "--data-dir", str(data), "--region", "US", "--processes", "1"]
    base += ["--chunk-rows", "2000"]
    folder = tmp_path / "out"
    folder.mkdir()
    kill_after_a_checkpoint([*base, "--output-dir", str(folder)], folder, 0.05)
    # The lists change: numbers of the rows done before are now listed.
    listed = [12025550001, *range(12025550002, 12025550100)]
    write_data(data, listed, Version(1_700_000_000_000, 2))
    resumed = subprocess.run(
        [*command(*base, "--output-dir", str(folder), "--resume")[:-2], "--log-level", "WARNING"],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=REPO,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "the data changed since the interrupted scrub" in resumed.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert run(*base, "--output-dir", str(fresh)).returncode == 0
    assert outputs(folder) == outputs(fresh)
    report = json.loads((folder / "leads.summary.json").read_text())
    assert report["rechecked_lines"] > 2 and report["resumed_at_line"] == 0
    assert report["data_versions"] == {"local": "1700000000000-2"}


def peak_rss_mib(args: list[str]) -> float:
    """Peak resident size of a scrub run in a child of a fresh Python (ru_maxrss of children)."""
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command(*args)],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=REPO,
        timeout=300,
        check=True,
    )
    return int(result.stdout) / 1024


def write_repeating_leads(path: Path, rows: int) -> None:
    """The same 200,000 numbers over and over: the bitmap of numbers seen stops growing
    (it costs a few bytes per distinct number, by design), so any growth is per row."""
    numbers = np.arange(rows, dtype=np.int64) % 200_000 * 7 + 2_025_550_000
    with path.open("w") as out:
        out.write("id,phone\n")
        out.writelines(f"{index},+1{number}\n" for index, number in enumerate(numbers.tolist()))


def test_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    (tmp_path / "internal.txt").write_text("+12025550001\n")
    peaks = []
    for rows in (1_200_000, 4_800_000):
        source = tmp_path / f"leads-{rows}.csv"
        write_repeating_leads(source, rows)
        args = [str(source), "--list", f"internal={tmp_path / 'internal.txt'}", "--region", "US"]
        args += ["--processes", "1", "--chunk-rows", "20000"]
        peaks.append(peak_rss_mib(args))
        source.unlink()
    # Holding the whole file took about 560 MB per million rows (2 GB more here);
    # streamed, nothing grows with the rows.
    assert peaks[1] - peaks[0] < 10, f"peak resident MiB: {peaks}"
