"""`suppression scrub --as-of`: a lead file against the lists as they stood at an earlier point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.entries import Entry, encode_entry
from suppression.lists import ListKind, ListView, Op, Version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
US = 12125550123
OTHER = 12125550199
CLEAN = 12025550147
ADDED_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
RELEASED_MS = ADDED_MS + 3_600_000


def build_archive(data_dir: Path) -> None:
    """Two opt-outs at ADDED_MS, one of them released with consent an hour later."""
    writer = ChangeArchive(ArchiveOptions(data_dir / "archive", fsync=False))
    writer.open()
    writer.start(ListView(Version(), {}, {}, ()))
    rows = [
        (ADDED_MS, Entry(Op.ADD, "optout", ListKind.OPT_OUT, "sms_reply", (US, OTHER),
                         timestamp_ms=ADDED_MS)),
        (RELEASED_MS, Entry(Op.REMOVE, "optout", ListKind.OPT_OUT, "consent", (US,),
                            evidence="consent-form-17", timestamp_ms=RELEASED_MS)),
    ]  # fmt: skip
    for ms, entry in rows:
        fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
        writer.append([(f"{ms}-0".encode(), fields)], ListView(Version(), {}, {}, ()))
    writer.close()


def scrub(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPRESSION_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "suppression.cli", "scrub", str(tmp_path / "leads.csv"),
         "--data-dir", str(tmp_path / "data"), "--processes", "1", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def phones(path: Path) -> list[str]:
    return [line.split(",")[1] for line in path.read_text().splitlines()[1:]]


def test_a_scrub_as_of_a_version_or_a_time_uses_the_lists_of_then(tmp_path: Path) -> None:
    build_archive(tmp_path / "data")
    (tmp_path / "leads.csv").write_text(f"name,phone\na,+{US}\nb,+{OTHER}\nc,+{CLEAN}\n")
    before = scrub(tmp_path, "--as-of", "2025-11-24T16:30:00Z")
    assert before.returncode == 0, before.stderr
    assert phones(tmp_path / "leads.suppressed.csv") == [f"+{US}", f"+{OTHER}"]
    assert phones(tmp_path / "leads.clean.csv") == [f"+{CLEAN}"]
    summary = json.loads((tmp_path / "leads.summary.json").read_text())
    assert f"{ADDED_MS}-0" in json.dumps(summary), "the summary names the version used"
    assert "consent-form" not in json.dumps(summary)
    # At the consent's version: US is clean again, OTHER still opted out.
    after = scrub(tmp_path, "--as-of", f"{RELEASED_MS}-0")
    assert after.returncode == 0, after.stderr
    assert phones(tmp_path / "leads.suppressed.csv") == [f"+{OTHER}"]
    assert phones(tmp_path / "leads.clean.csv") == [f"+{US}", f"+{CLEAN}"]


def test_what_the_archive_cannot_answer_is_refused(tmp_path: Path) -> None:
    build_archive(tmp_path / "data")
    (tmp_path / "leads.csv").write_text(f"name,phone\na,+{US}\n")
    late = scrub(tmp_path, "--as-of", str(RELEASED_MS + 600_000))
    assert late.returncode == 2 and "after the archive's last change" in late.stderr
    remote = scrub(tmp_path, "--as-of", f"{ADDED_MS}-0", "--target", "127.0.0.1:1")
    assert remote.returncode == 2 and "scrub locally" in remote.stderr
    assert not (tmp_path / "leads.clean.csv").exists()
