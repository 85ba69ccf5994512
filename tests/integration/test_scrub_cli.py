"""`suppression scrub` as a real command: local and remote modes, errors, interruption, progress."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, ServerSubprocess, wait_for
from tests.processes import alive, children, group_members, thread_count

pytestmark = pytest.mark.integration

POOL_ROWS = 30_000
"""Large enough for the local engine to fork its worker pool."""


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}


def scrub(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "suppression.cli", "scrub", *args, "--log-level", "WARNING"]
    return subprocess.run(
        command, capture_output=True, text=True, env=environment(), cwd=REPO, timeout=timeout
    )


def write_lists(folder: Path) -> list[str]:
    (folder / "internal.txt").write_text("+12125550123\n+12025550100\n")
    (folder / "national.txt").write_text("+8613800138000\n+1900xxxxxxx\n")
    return [
        "--list",
        f"internal={folder / 'internal.txt'}",
        "--list",
        f"national:registry={folder / 'national.txt'}",
    ]


def write_leads(path: Path, rows: int) -> None:
    formats = [
        "+1202555{:04d}",
        "(202) 555-{:04d}",
        "202.555.{:04d}",
        "1-202-555-{:04d}",
        "+1 900 555 {:04d}",
        "{:d}",
    ]
    with path.open("w", newline="") as out:
        out.write("id,name,phone,notes\n")
        for index in range(rows):
            phone = formats[index % len(formats)].format(index % 10_000)
            note = '"said ""no"", twice"' if index % 11 == 0 else ""
            out.write(f"{index},Lead {index},{phone},{note}\n")
        out.write("broken,row\n")


def summary_of(folder: Path, stem: str = "leads") -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / f"{stem}.summary.json").read_text())
    return data


def counts(summary: dict[str, object]) -> tuple[object, ...]:
    keys = ("rows_in", "clean", "suppressed", "invalid", "duplicates", "invalid_per_reason")
    return tuple(summary[key] for key in keys) + (summary["suppressed_per_list"],)


def test_local_and_remote_scrubs_write_the_same_files(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    servers = [serve_subprocess(*lists), serve_subprocess(*lists)]
    source = tmp_path / "leads.csv"
    write_leads(source, POOL_ROWS)
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()

    local = scrub(str(source), *lists, "--region", "US", "--output-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    assert "clean + suppressed + invalid" in local.stdout
    assert local.stderr == ""  # no progress bars and no logs when not on a terminal

    for server in servers:
        server.wait_serving()
    targets = [arg for server in servers for arg in ("--target", server.target)]
    remote = scrub(
        str(source),
        *targets,
        "--region",
        "US",
        "--output-dir",
        str(tmp_path / "remote"),
        "--batch-size",
        "500",  # some 60 batches, so both servers surely answer some
    )
    assert remote.returncode == 0, remote.stderr

    here, there = summary_of(tmp_path / "local"), summary_of(tmp_path / "remote")
    assert here["rows_in"] == POOL_ROWS + 1
    assert here["rows_in"] == here["clean"] + here["suppressed"] + here["invalid"]  # type: ignore[operator]
    assert counts(here) == counts(there)
    assert here["data_versions"] == {"local": "0-0"}
    assert there["data_versions"] == {server.target: "0-0" for server in servers}
    assert (here["mode"], there["mode"]) == ("local", "remote")
    for kind in ("clean", "suppressed", "invalid"):
        name = f"leads.{kind}.csv"
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes()
    invalid_lines = (tmp_path / "local" / "leads.invalid.csv").read_text().splitlines()
    assert invalid_lines[-1] == f"broken,row,,,RAGGED_ROW,{POOL_ROWS + 2}"
    clean_lines = (tmp_path / "local" / "leads.clean.csv").read_text().splitlines()
    assert '"said ""no"", twice"' in clean_lines[1]  # other columns are copied as written


def test_gzip_tsv_with_a_bom_and_a_named_column(tmp_path: Path) -> None:
    import gzip

    lists = write_lists(tmp_path)
    source = tmp_path / "leads.tsv.gz"
    body = "\ufeffid\tTel\tname\n1\t+12125550123\tAnn\n2\t(202) 555-0147\tBo\n"
    source.write_bytes(gzip.compress(body.encode("utf-8")))
    result = scrub(str(source), *lists, "--region", "US", "--column", "tel")
    assert result.returncode == 0, result.stderr
    summary = summary_of(tmp_path)
    assert (summary["encoding"], summary["delimiter"], summary["column"]) == (
        "utf-8-sig",
        "\t",
        "Tel",
    )
    assert (tmp_path / "leads.clean.tsv").read_bytes() == (
        "\ufeffid\tTel\tname\n2\t(202) 555-0147\tBo\n".encode()
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--column", "mobile"], "column 'mobile' is not in"),
        (["--lists", "nope"], "unknown list(s) nope"),
        (["--region", "XX"], "unknown default region 'XX'"),
        (["--target", "127.0.0.1:1", "--timeout", "2"], "cannot reach server 127.0.0.1:1"),
        (["--encoding", "klingon"], "unknown --encoding 'klingon'"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_code_2(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_text("id,phone\n1,+12025550147\n")
    result = scrub(str(source), *lists, *arguments)
    assert result.returncode == 2
    assert result.stderr.startswith("suppression: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "leads.clean.csv").exists()


def test_unreadable_inputs_are_one_line_errors_with_exit_code_2(tmp_path: Path) -> None:
    lists = write_lists(tmp_path)
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(b"this is not gzip")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    headless = tmp_path / "headless.csv"
    headless.write_text("1,Ann,+12125550123\n2,Bo,+12025550147\n")
    for source, message in (
        (headless, "has no header row"),
        (tmp_path / "missing.csv", "no such file"),
        (tmp_path, "it is a directory"),
        (corrupt, "cannot read"),
        (empty, "is empty"),
    ):
        result = scrub(str(source), *lists)
        assert result.returncode == 2, result
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert "5550123" not in result.stderr  # never a number in a message
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_killed_scrub_leaves_no_clean_file(tmp_path: Path) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, 300_000)
    command = [sys.executable, "-m", "suppression.cli", "scrub", str(source), *lists]
    process = subprocess.Popen(
        [*command, "--region", "US", "--processes", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".leads.clean.csv.*.partial")):
            assert process.poll() is None, "the scrub finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert not (tmp_path / "leads.clean.csv").exists()
    assert not (tmp_path / "leads.summary.json").exists()


def test_a_terminal_gets_progress_bars(tmp_path: Path) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, 2_000)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "suppression.cli", "scrub", str(source), *lists]
    process = subprocess.Popen(
        [*command, "--region", "US", "--log-level", "WARNING"],
        stdout=terminal,
        stderr=terminal,
        env=environment() | {"TERM": "xterm", "COLUMNS": "120"},
        cwd=REPO,
    )
    os.close(terminal)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the scrub is done
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        process.wait(60)
    assert process.returncode == 0
    text = output.decode("utf-8", "replace")
    for expected in ("reading", "checking", "writing", "2001/2001"):
        assert expected in text


def test_a_dead_worker_is_a_one_line_error(tmp_path: Path) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, 300_000)
    command = [sys.executable, "-m", "suppression.cli", "scrub", str(source), *lists]
    process = subprocess.Popen(
        [*command, "--region", "US", "--processes", "2", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=REPO,
    )
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 60
    while not children.read_text().split():
        assert process.poll() is None, "the scrub finished before a worker started"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(int(children.read_text().split()[0]), signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip() == (
        "suppression: error: a worker process died (killed, or out of memory?); "
        "run the scrub again, perhaps with fewer --processes"
    )
    assert not (tmp_path / "leads.clean.csv").exists()


# -- stopping a scrub: signals, and what a stopped scrub leaves behind -----------------


def start_scrub(*args: str) -> subprocess.Popen[str]:
    """A scrub in a session of its own: its process group is its pid, as in a shell's job."""
    command = [sys.executable, "-m", "suppression.cli", "scrub", *args, "--log-level", "WARNING"]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=REPO,
        start_new_session=True,
    )


def wait_until(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, f"the scrub ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def no_survivors(group: int) -> None:
    """Every process of the scrub's group has gone (workers included)."""
    wait_for(lambda: not group_members(group), 10, f"process group {group} to end")


@pytest.mark.parametrize(
    ("mode", "number", "whole_group", "streaming"),
    [
        # Ctrl-C on a terminal signals the whole job, workers included.
        ("remote", signal.SIGINT, True, False),
        ("remote", signal.SIGINT, True, True),
        ("local", signal.SIGINT, True, False),
        ("local", signal.SIGTERM, False, False),  # kill PID
    ],
)
def test_a_signal_stops_the_scrub_at_once_and_leaves_nothing(
    tmp_path: Path,
    serve_subprocess: Callable[..., ServerSubprocess],
    mode: str,
    number: signal.Signals,
    whole_group: bool,
    streaming: bool,
) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, 300_000)
    out = tmp_path / "out"
    out.mkdir()
    data = lists
    if mode == "remote":
        server = serve_subprocess(*lists)
        server.wait_serving()
        data = ["--target", server.target]
    process = start_scrub(
        str(source), *data, "--region", "US", "--processes", "2", "--output-dir", str(out)
    )
    try:
        wait_until(process, lambda: len(children(process.pid)) == 2, "its workers started")
        if streaming:  # the engine is built: its eight streams run, batches are in flight
            wait_until(process, lambda: thread_count(process.pid) >= 8, "its streams started")
        if whole_group:
            os.killpg(process.pid, number)
        else:
            process.send_signal(number)
        _, stderr = process.communicate(timeout=10)  # "within a few seconds"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    assert process.returncode == 2
    no_survivors(process.pid)
    expected = f"suppression: error: scrub interrupted by {number.name}; no output was written"
    checkpoint = list(out.glob(".leads.checkpoint.*.json"))
    if checkpoint:  # a chunk was done: what --resume needs stays, hidden
        line = json.loads(checkpoint[0].read_text())["next_line"]
        expected += f"; run it again with --resume to continue from line {line:,}"
        assert all(path.name.startswith(".") for path in out.iterdir())
    else:
        assert list(out.iterdir()) == []  # no output, and no hidden .partial file
    assert stderr.strip() == expected


def test_a_killed_scrub_takes_its_workers_and_the_next_run_its_partial_files(
    tmp_path: Path,
) -> None:
    lists = write_lists(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, 300_000)
    out = tmp_path / "out"
    out.mkdir()
    options = [str(source), *lists, "--region", "US", "--output-dir", str(out)]
    process = start_scrub(*options, "--processes", "2")
    try:
        wait_until(
            process,
            lambda: len(children(process.pid)) == 2 and bool(list(out.glob(".*.partial"))),
            "its workers started and it began writing",
        )
        workers = children(process.pid)
        os.kill(process.pid, signal.SIGKILL)  # only the scrub: the kernel must do the rest
        process.communicate(timeout=10)
        no_survivors(process.pid)
        assert not any(alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    assert [path.name for path in out.iterdir() if not path.name.startswith(".")] == []

    again = scrub(*options, "--processes", "1")
    assert again.returncode == 0, again.stderr
    assert sorted(path.name for path in out.iterdir()) == [
        "leads.clean.csv",
        "leads.invalid.csv",
        "leads.summary.json",
        "leads.summary.txt",
        "leads.suppressed.csv",
    ]


# -- failover between targets ----------------------------------------------------------


def write_distinct_leads(path: Path, rows: int) -> None:
    """Leads whose phone strings are all different, so every row makes work for a server."""
    with path.open("w", newline="") as out:
        out.write("id,phone\n")
        for index in range(rows):
            number = 2_025_550_000 + index
            phone = (
                f"+1{number}"
                if index % 2
                else f"({str(number)[:3]}) {str(number)[3:6]}-{index % 10_000:04d}"
            )
            out.write(f"{index},{phone}\n")


def answered_batches(server: ServerSubprocess) -> float:
    """Batches the server has answered, from its /metrics."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("suppression_batch_size_numbers_count"):
                return float(line.split()[-1])
    return 0.0


def unread_bytes(port: int) -> int:
    """Bytes clients sent to ``port`` that its process has not read yet (Linux /proc/net/tcp)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                total += int(fields[4].split(":")[1], 16)
    return total


def test_a_target_killed_mid_scrub_leaves_its_batches_to_the_other(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    survivor, victim = serve_subprocess(*lists), serve_subprocess(*lists)
    source = tmp_path / "leads.csv"
    write_distinct_leads(source, 200_000)
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    local = scrub(str(source), *lists, "--region", "US", "--output-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    for server in (survivor, victim):
        server.wait_serving()

    process = start_scrub(
        str(source),
        *("--target", survivor.target, "--target", victim.target),
        *("--region", "US", "--batch-size", "200", "--processes", "1"),
        *("--output-dir", str(tmp_path / "remote")),
    )
    try:
        wait_until(process, lambda: answered_batches(victim) > 0, "the victim answered a batch")
        # Frozen, the victim keeps what it is sent unread: once some is, killing it
        # surely leaves batches in its hands, which the survivor must answer.
        victim.process.send_signal(signal.SIGSTOP)
        wait_until(process, lambda: unread_bytes(victim.port) > 0, "a batch waited on the victim")
        victim.kill()
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    here, there = summary_of(tmp_path / "local"), summary_of(tmp_path / "remote")
    assert counts(here) == counts(there)
    for kind in ("clean", "suppressed", "invalid"):
        name = f"leads.{kind}.csv"
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes()
    assert there["retried_batches"] > 0  # type: ignore[operator]
    assert there["retried_on"] == {survivor.target: there["retried_batches"]}
    assert list(there["failed_targets"]) == [victim.target]  # type: ignore[call-overload]
    text = (tmp_path / "remote" / "leads.summary.txt").read_text()
    assert "batches retried" in text and victim.target in text


def test_no_target_up_is_a_one_line_error(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    servers = [serve_subprocess(*lists), serve_subprocess(*lists)]
    for server in servers:
        server.wait_serving()
        server.kill()
    source = tmp_path / "leads.csv"
    write_leads(source, 100)
    targets = [arg for server in servers for arg in ("--target", server.target)]
    result = scrub(str(source), *targets, "--region", "US", "--timeout", "2")
    assert result.returncode == 2
    assert result.stderr.startswith("suppression: error: no target can answer (2 tried): ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(server.target in result.stderr for server in servers)
    assert not (tmp_path / "leads.clean.csv").exists()


def test_a_remote_scrub_interrupted_and_resumed_writes_what_a_local_one_does(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    """Remote mode's fast path checkpoints after each block; --resume goes on from there."""
    lists = write_lists(tmp_path)
    server = serve_subprocess(*lists)
    source = tmp_path / "leads.csv"
    write_leads(source, 1_000_000)  # blocks after the first 256 KiB: the fast path
    (tmp_path / "local").mkdir()
    local = scrub(str(source), *lists, "--region", "US", "--output-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    server.wait_serving()
    out = tmp_path / "remote"
    out.mkdir()
    args = (str(source), "--target", server.target, "--region", "US", "--output-dir", str(out))
    process = start_scrub(*args, "--processes", "2", "--timeout", "30")
    try:
        # The file's first 256 KiB are one chunk read line by line; a block comes after.
        wait_until(process, lambda: _chunks_done(out) >= 2, "a block's checkpoint")
        server.process.send_signal(signal.SIGSTOP)  # the scrub waits for answers now
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        server.process.send_signal(signal.SIGCONT)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    assert process.returncode == 2
    assert "run it again with --resume to continue from line" in stderr
    resumed = scrub(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    report = summary_of(out)
    assert int(str(report["resumed_at_line"])) > 1
    assert report["mode"] == "remote" and report["balanced"] is True
    for kind in ("clean", "suppressed", "invalid"):
        name = f"leads.{kind}.csv"
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), kind
    assert counts(report) == counts(summary_of(tmp_path / "local"))


def _chunks_done(folder: Path) -> int:
    """The chunks a running scrub's checkpoint counts (0 before the first)."""
    for path in folder.glob(".leads.checkpoint.*.json"):
        try:
            return int(json.loads(path.read_text())["chunks"])
        except (OSError, ValueError, KeyError):
            return 0
    return 0
