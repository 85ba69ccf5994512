"""`suppression scrub` under a pre-dial policy: local and remote decide alike, deferred rows kept.

A local scrub (``--policy-file``) decides through the same function as the
server's Check, and a remote one (``--target`` with ``--decide-at``) asks the
servers to decide for the same instant: both write the same four row files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suppression.client import ClientConfig, SuppressionClient
from tests.conftest import REPO, ServerSubprocess
from tests.samples import DAY_AND_NIGHT_POLICIES, scrub_outputs

pytestmark = pytest.mark.integration

ROW_FILES = ("clean", "suppressed", "invalid", "deferred")
AT = "2026-06-15T13:00:00Z"
"""09:00 in New York and Chicago, 06:00 in Los Angeles, 21:00 in Shanghai."""
AT_MS = int(dt.datetime(2026, 6, 15, 13, tzinfo=dt.UTC).timestamp() * 1000)
NY_ON_REGISTRY = "+12125550100"
NY_CONSENTED = "+12125550101"
NY_OPTED_OUT = "+12125550102"


LEADS = [
    ("ny registry", NY_ON_REGISTRY),
    ("ny consented", NY_CONSENTED),  # on the registry, lifted by consent: clean
    ("ny opted out", "(212) 555-0102"),  # consent never lifts an opt-out
    ("shanghai", "+86 138 0013 8000"),  # 21:00 there: deferred to 08:00
    ("los angeles", "213.555.0100"),  # 06:00 there: deferred to 08:00
    ("chicago", "+1 312 555 0100"),  # 08:00 there: clean
    ("not a number", "call me"),
    ("ny registry again", "212-555-0100"),
    ("shanghai again", "+8613800138000"),
    ("quoted los angeles", '"(213) 555-0100"'),
]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "suppression.cli", "scrub", *args, "--log-level", "WARNING"]


def scrub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, env=environment(), cwd=REPO, timeout=120
    )


def write_lists(folder: Path) -> list[str]:
    files = {
        "registry:registry": [NY_ON_REGISTRY, NY_CONSENTED, NY_OPTED_OUT],
        "mine": [NY_OPTED_OUT],
        "consent:campaign": [NY_CONSENTED, NY_OPTED_OUT],
    }
    args = []
    for spec, numbers in files.items():
        path = folder / f"{spec.split(':')[0]}.txt"
        path.write_text("".join(f"{n}\n" for n in numbers))
        args += ["--list", f"{spec}={path}"]
    return args


def write_policies(folder: Path, version: str = "v1") -> Path:
    path = folder / "policies.toml"
    path.write_text(DAY_AND_NIGHT_POLICIES.format(version=version, start="08:00"))
    return path


def write_leads(path: Path, repeat: int = 1) -> None:
    lines = ["id,name,phone"]
    for round_ in range(repeat):
        for index, (name, phone) in enumerate(LEADS):
            lines.append(f"{round_}-{index},{name},{phone}")
    path.write_text("\n".join(lines) + "\n")


def row_files(folder: Path) -> dict[str, bytes]:
    return scrub_outputs(folder, ROW_FILES)


def summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "leads.summary.json").read_text())
    return data


def decided(folder: Path) -> dict[str, Any]:
    """The summary without what differs between modes, runs and resumes."""
    data = summary(folder)
    for varying in (
        "seconds", "rows_per_second", "outputs", "resumed_at_line", "rechecked_lines", "mode",
        "data_versions", "input",
    ):  # fmt: skip
        data.pop(varying)
    return data


def rows(folder: Path, kind: str) -> list[list[str]]:
    return [line.split(",") for line in (folder / f"leads.{kind}.csv").read_text().splitlines()]


def test_local_and_remote_scrubs_under_a_policy_write_the_same_files(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    policies = write_policies(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source)
    servers = [serve_subprocess(*lists, "--policy-file", str(policies)) for _ in range(2)]
    for server in servers:
        server.wait_serving()
    runs: dict[str, list[str]] = {
        "local": [*lists, "--policy-file", str(policies)],
        "remote": ["--target", servers[0].target],
        "two-targets": ["--target", servers[0].target, "--target", servers[1].target],
    }
    for name, args in runs.items():
        folder = tmp_path / name
        folder.mkdir()
        done = scrub(str(source), *args, "--region", "US", "--decide-at", AT,
                     "--processes", "1", "--output-dir", str(folder))  # fmt: skip
        assert done.returncode == 0, done.stderr
    local = tmp_path / "local"
    for name in ("remote", "two-targets"):
        assert row_files(tmp_path / name) == row_files(local), f"{name} differs from local"
        assert decided(tmp_path / name) == decided(local)

    assert [row[2] for row in rows(local, "clean")[1:]] == [NY_CONSENTED, "+1 312 555 0100"]
    assert rows(local, "suppressed")[0] == ["id", "name", "phone", "suppressed_by"]
    assert [(row[2], row[3]) for row in rows(local, "suppressed")[1:]] == [
        (NY_ON_REGISTRY, "registry"),
        ("(212) 555-0102", "mine"),
        ("212-555-0100", "registry"),
    ]
    assert rows(local, "deferred")[0] == ["id", "name", "phone", "earliest_dial_utc"]
    deferred = [(row[2], row[-1]) for row in rows(local, "deferred")[1:]]
    assert [phone for phone, _ in deferred] == [
        "+86 138 0013 8000", "213.555.0100", "+8613800138000", '"(213) 555-0100"',
    ]  # fmt: skip
    # Each deferred row carries what Check answers for its number at that instant.
    phones = [phone.strip('"') for phone, _ in deferred]
    config = ClientConfig(targets=(servers[0].target,), region="US")
    with SuppressionClient(config) as client:
        answer = client.check(numbers=phones, decide_at=AT_MS)
    expected = [answer.earliest_of(index) for index in range(len(phones))]
    assert [when for _, when in deferred] == [
        moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in expected if moment is not None
    ]
    assert [when for _, when in deferred] == [
        "2026-06-16T00:00:00Z", "2026-06-15T15:00:00Z", "2026-06-16T00:00:00Z",
        "2026-06-15T15:00:00Z",
    ]  # fmt: skip

    report = summary(local)
    assert (report["clean"], report["suppressed"], report["invalid"], report["deferred"]) == (
        2, 3, 1, 4,
    )  # fmt: skip
    assert report["rows_in"] == 10 and report["balanced"] is True
    assert (report["policy"], report["policy_version"]) == ("day", "v1")
    assert report["decided_at"] == AT
    assert report["outputs"]["deferred"].endswith("leads.deferred.csv")
    assert summary(tmp_path / "remote")["policy"] == "day"
    text = (local / "leads.summary.txt").read_text()
    assert "deferred (not yet)" in text and "day version v1" in text and AT in text

    # No policy option, a server with policies: it decides each batch at its own now, under
    # its default policy; whatever it defers still has a file, and the summary balances.
    folder = tmp_path / "servers-now"
    folder.mkdir()
    done = scrub(str(source), "--target", servers[0].target, "--region", "US",
                 "--output-dir", str(folder))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = summary(folder)
    assert (report["policy"], report["policy_version"], report["decided_at"]) == ("day", "v1", "")
    assert report["balanced"] is True and report["rows_in"] == 10
    assert report["suppressed"] == 3 and report["clean"] + report["deferred"] == 6
    assert "each server's now" in (folder / "leads.summary.txt").read_text()


def test_dedupe_and_compress_under_a_policy_match_remote(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    policies = write_policies(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, repeat=3)
    server = serve_subprocess(*lists, "--policy-file", str(policies))
    server.wait_serving()
    for name, args in {
        "local": [*lists, "--policy-file", str(policies)],
        "remote": ["--target", server.target],
    }.items():
        folder = tmp_path / name
        folder.mkdir()
        done = scrub(str(source), *args, "--region", "US", "--decide-at", AT, "--dedupe",
                     "--compress", "--policy", "day", "--output-dir", str(folder))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (folder / "leads.deferred.csv.gz").exists()
    assert row_files(tmp_path / "remote") == row_files(tmp_path / "local")
    report = summary(tmp_path / "local")
    assert report["deferred"] == 2  # Shanghai and Los Angeles, once each
    assert report["rows_in"] == 30
    total = sum(report[kind] for kind in ROW_FILES) + report["duplicates_dropped"]
    assert total == report["rows_in"]


def test_another_policy_names_others_and_a_server_without_policies_refuses(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    lists = write_lists(tmp_path)
    policies = write_policies(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source)
    night = scrub(str(source), *lists, "--policy-file", str(policies), "--policy", "night",
                  "--decide-at", AT, "--region", "US")  # fmt: skip
    assert night.returncode == 0, night.stderr
    assert summary(tmp_path)["deferred"] == 0 and summary(tmp_path)["policy"] == "night"
    assert rows(tmp_path, "deferred") == [["id", "name", "phone", "earliest_dial_utc"]]
    unknown = scrub(str(source), *lists, "--policy-file", str(policies), "--policy", "nope")
    assert unknown.returncode == 2 and "policies: day, night" in unknown.stderr
    no_file = scrub(str(source), *lists, "--policy", "day")
    assert no_file.returncode == 2 and "--policy-file" in no_file.stderr
    plain = serve_subprocess(*lists)
    plain.wait_serving()
    refused = scrub(str(source), "--target", plain.target, "--decide-at", AT, "--region", "US")
    assert refused.returncode == 2 and "no pre-dial policies" in refused.stderr


def test_a_scrub_without_a_policy_writes_no_deferred_file(tmp_path: Path) -> None:
    lists = write_lists(tmp_path)
    policies = write_policies(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source)
    assert scrub(str(source), *lists, "--policy-file", str(policies), "--region", "US",
                 "--decide-at", AT).returncode == 0  # fmt: skip
    assert (tmp_path / "leads.deferred.csv").exists()
    plain = scrub(str(source), *lists, "--region", "US")
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "leads.deferred.csv").exists(), "the earlier run's file is gone"
    report = summary(tmp_path)
    assert (report["policy"], report["deferred"], report["decided_at"]) == ("", 0, "")
    assert "deferred" not in report["outputs"]
    # On the lists alone the consented and the deferred numbers are what they were before.
    assert [row[2] for row in rows(tmp_path, "suppressed")[1:]] == [
        NY_ON_REGISTRY, NY_CONSENTED, "(212) 555-0102", "212-555-0100",
    ]  # fmt: skip


def kill_after_a_checkpoint(args: list[str], folder: Path) -> None:
    """Start a scrub and SIGKILL it once it has saved a checkpoint."""
    process = subprocess.Popen(
        command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=environment(), cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        mine = folder / f".leads.checkpoint.{process.pid}.json"
        while not mine.exists():
            assert process.poll() is None, "the scrub ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL, "the scrub finished before it was killed"


def test_a_resume_under_a_policy_equals_a_clean_run_and_keeps_its_instant(
    tmp_path: Path,
) -> None:
    lists = write_lists(tmp_path)
    policies = write_policies(tmp_path)
    source = tmp_path / "leads.csv"
    write_leads(source, repeat=6_000)
    base = [str(source), *lists, "--policy-file", str(policies), "--region", "US",
            "--processes", "1", "--chunk-rows", "500"]  # fmt: skip
    whole = tmp_path / "whole"
    whole.mkdir()
    # Two worker processes here, none in the killed and resumed runs: the same decisions.
    done = scrub(*base, "--processes", "2", "--decide-at", AT, "--output-dir", str(whole))
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "killed"
    folder.mkdir()
    kill_after_a_checkpoint([*base, "--decide-at", AT, "--output-dir", str(folder)], folder)
    # Another policy, another instant, or none: refused, and the checkpoint stays.
    for other in (["--policy", "night"], ["--decide-at", "2026-06-15T14:00:00Z"], []):
        args = [*base, *other, "--output-dir", str(folder), "--resume"]
        if not other:
            args.remove("--policy-file")
            args.remove(str(policies))
        refused = scrub(*args)
        assert refused.returncode == 2, other
        # (The log filter masks the date's digit run like a phone number's.)
        expected = "the interrupted scrub decided under the default policy version v1 for "
        assert expected in refused.stderr, refused.stderr
    write_policies(tmp_path, version="v2")
    changed = scrub(*base, "--output-dir", str(folder), "--resume")
    assert changed.returncode == 2 and "version v2" in changed.stderr
    write_policies(tmp_path, version="v1")
    # Resumed without --decide-at: the recorded instant, not now.
    resumed = scrub(*base, "--output-dir", str(folder), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert summary(folder)["resumed_at_line"] > 2
    assert row_files(folder) == row_files(whole)
    assert decided(folder) == decided(whole)
