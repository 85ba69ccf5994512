"""`suppression explain` and `suppression evidence` as real commands over a real archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.archive.segment import scan_records
from suppression.entries import Entry, encode_entry
from suppression.lists import ListKind, ListView, Op, Version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
US = 12125550123
OTHER = 12125550199
ADDED_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
RELEASED_MS = ADDED_MS + 3_600_000


def build_archive(data_dir: Path) -> None:
    writer = ChangeArchive(ArchiveOptions(data_dir / "archive", fsync=False))
    writer.open()
    writer.start(ListView(Version(), {}, {}, ()))
    rows = [
        (ADDED_MS, Entry(Op.ADD, "optout", ListKind.OPT_OUT, "sms_reply", (US, OTHER),
                         actor="sms-gateway", evidence="sms-TD-8841", timestamp_ms=ADDED_MS)),
        (RELEASED_MS, Entry(Op.REMOVE, "optout", ListKind.OPT_OUT, "consent", (US,),
                            actor="cs-2", evidence="consent-form-17", timestamp_ms=RELEASED_MS)),
    ]  # fmt: skip
    for ms, entry in rows:
        fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
        writer.append([(f"{ms}-0".encode(), fields)], ListView(Version(), {}, {}, ()))
    writer.close()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "suppression.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_explain_prints_a_table_and_json(tmp_path: Path) -> None:
    build_archive(tmp_path)
    table = run("explain", f"+{US}", "--at", "2025-11-24T16:30:00Z", "--data-dir", str(tmp_path))
    assert table.returncode == 0, table.stderr
    assert "SUPPRESSED" in table.stdout and "sms-TD-8841" in table.stdout
    assert str(US) not in table.stdout and "+1212****123" in table.stdout
    answer = run("explain", str(US), "--version", f"{RELEASED_MS}-0", "--json",
                 "--data-dir", str(tmp_path))  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    doc = json.loads(answer.stdout)
    assert doc["verdict"] == "ALLOWED" and doc["number"] == "+1212****123"
    (optout,) = doc["lists"]
    assert optout["since"]["evidence"] == "consent-form-17"
    assert [c["op"] for c in optout["history"]] == ["add", "remove"]
    assert optout["history"][0]["numbers_in_change"] == 2
    assert str(OTHER) not in answer.stdout and str(US) not in answer.stdout


def test_explain_refuses_what_the_archive_cannot_know(tmp_path: Path) -> None:
    build_archive(tmp_path)
    after = run("explain", str(US), "--at", str(RELEASED_MS + 60_000), "--data-dir", str(tmp_path))
    assert after.returncode == 2
    assert "after the archive's last change" in after.stderr
    neither = run("explain", str(US), "--data-dir", str(tmp_path))
    assert neither.returncode == 2 and "exactly one of --at" in neither.stderr


def test_evidence_writes_both_files_masked_unless_asked(tmp_path: Path) -> None:
    build_archive(tmp_path)
    out = tmp_path / "reports"
    result = run("evidence", str(US), "--at", "2025-11-24T16:30:00Z", "--out", str(out),
                 "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        f"evidence-1212x123-time-{ADDED_MS + 1_800_000}.json",
        f"evidence-1212x123-time-{ADDED_MS + 1_800_000}.md",
    ], "two files, no temporary left behind, no full number in the names"
    for path in out.iterdir():
        text = path.read_text()
        assert str(US) not in text and str(OTHER) not in text
    doc = json.loads((out / written[0]).read_text())
    assert doc["verdict"] == "SUPPRESSED" and doc["at"]["time"] == "2025-11-24T16:30:00.000+00:00"
    segment = doc["archive"]["segments"][0]
    assert segment["name"] == "segment-000001.seg" and len(segment["sha256"]) == 64
    page = (out / written[1]).read_text()
    assert "sms-TD-8841" in page and segment["sha256"] in page and "**SUPPRESSED**" in page
    full = run("evidence", str(US), "--version", f"{RELEASED_MS}-0", "--out", str(out),
               "--show-number", "--data-dir", str(tmp_path))  # fmt: skip
    assert full.returncode == 0, full.stderr
    shown = out / f"evidence-{US}-version-{RELEASED_MS}-0.json"
    assert json.loads(shown.read_text())["number"] == f"+{US}"


def test_evidence_refuses_a_segment_changed_since_it_was_written(tmp_path: Path) -> None:
    build_archive(tmp_path)
    segment = tmp_path / "archive" / "segment-000001.seg"
    records, _ = scan_records(segment.read_bytes())
    damaged = records[1].offset  # the first change, with another record after it
    data = bytearray(segment.read_bytes())
    data[damaged + 20] ^= 0x01
    segment.write_bytes(bytes(data))
    out = tmp_path / "reports"
    result = run("evidence", str(US), "--version", f"{RELEASED_MS}-0", "--out", str(out),
                 "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 2
    assert f"segment-000001.seg: record at byte {damaged:,} fails its CRC-32" in result.stderr
    assert not out.exists() or not any(out.iterdir()), "no report from a damaged archive"


AFTERNOONS = """\
version = "p1"

[lists]
optout = "opt_out"

[policies.afternoons]
suppress = ["optout"]

[policies.afternoons.window]
start = "13:00"
end = "21:00"
"""


def test_explain_and_evidence_give_the_policy_verdict_then(tmp_path: Path) -> None:
    build_archive(tmp_path)
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(AFTERNOONS)
    with_policy = ("--data-dir", str(tmp_path), "--policy-file", str(policy_file))
    added = run("explain", str(US), "--version", f"{ADDED_MS}-0", "--json", *with_policy)
    assert added.returncode == 0, added.stderr
    decided = json.loads(added.stdout)["policy"]
    assert (decided["policy"], decided["policy_version"]) == ("afternoons", "p1")
    assert decided["verdict"] == "SUPPRESSED" and decided["decided_at"].startswith("2025-11-24T16:")
    assert any("optout" in rule for rule in decided["rules"]), decided["rules"]
    # Released at 17:00 UTC, noon in New York: off the list, but outside 13:00-21:00 there.
    released = run("explain", str(US), "--version", f"{RELEASED_MS}-0", "--json", *with_policy)
    decided = json.loads(released.stdout)["policy"]
    assert decided["verdict"] == "DEFERRED" and not any("optout" in r for r in decided["rules"])
    assert decided["earliest"] == "2025-11-24T18:00:00.000+00:00"
    assert "not earlier policy files" in decided["note"]
    table = run("explain", str(US), "--version", f"{RELEASED_MS}-0", *with_policy)
    assert "Policy 'afternoons' (version p1)" in table.stdout and "DEFERRED" in table.stdout
    out = tmp_path / "reports"
    report = run("evidence", str(US), "--version", f"{RELEASED_MS}-0", "--out", str(out),
                 *with_policy)  # fmt: skip
    assert report.returncode == 0, report.stderr
    page = next(out.glob("*.md")).read_text()
    assert "Pre-dial policy then" in page and "**DEFERRED**" in page
    plain = run("explain", str(US), "--version", f"{RELEASED_MS}-0", "--json",
                "--data-dir", str(tmp_path))  # fmt: skip
    assert json.loads(plain.stdout)["policy"] is None
