"""The archive survives kill -9 in mid-write: nothing acknowledged is lost, a torn tail is cut.

A real child process appends large batches (each one write of about 10 MB,
which SIGKILL can interrupt part-way) and prints each batch's last ID once
``append`` returns: that print is the acknowledgement. The parent kills it
with SIGKILL at a random moment, then opens the archive as the next
archiver would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from suppression.archive import ArchiveOptions, ArchiveReader, ChangeArchive
from suppression.lists import Version

CHILD = r"""
import sys
from pathlib import Path
from suppression.archive import ArchiveOptions, ChangeArchive
from suppression.lists import ListView, Version

writer = ChangeArchive(ArchiveOptions(Path(sys.argv[1]), fsync=False))
writer.open()
writer.start(ListView(Version(), {}, {}, ()))
numbers = ",".join(str(14155550000 + i * 7) for i in range(100_000)).encode()
fields = {b"v": b"1", b"op": b"add", b"list": b"bulk", b"kind": b"campaign",
          b"numbers": numbers, b"source": b"registry", b"actor": b"", b"evidence": b"",
          b"ts": b"1"}
ms = 1_000
while True:
    batch = []
    for _ in range(8):
        ms += 1
        batch.append((f"{ms}-0".encode(), fields))
    writer.append(batch, ListView(Version(), {}, {}, ()))
    print(f"{ms}-0", flush=True)
"""


def run_and_kill(directory: Path, rng: random.Random) -> list[str]:
    """Start the child, let it acknowledge a few batches, SIGKILL it; its acknowledgements."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip() for _ in range(rng.randint(1, 3))]
    time.sleep(rng.uniform(0.03, 0.09))  # one batch takes about 70 ms here
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return acknowledged + rest.split()


def test_kill_9_loses_no_acknowledged_change_and_the_torn_tail_is_cut(tmp_path: Path) -> None:
    rng = random.Random(12)
    torn = 0
    for trial in range(30):
        directory = tmp_path / f"trial{trial}"
        acknowledged = run_and_kill(directory, rng)
        assert acknowledged, "the child acknowledged nothing"
        reopened = ChangeArchive(ArchiveOptions(directory, fsync=False))
        report = reopened.open()
        reopened.close()
        if report.cut is not None:
            torn += 1
            assert "segment-000001.seg: cut a torn tail of" in report.cut
        reader = ArchiveReader(directory)
        catalog = reader.catalog()
        assert catalog.damage == ()
        changes, _ = reader.changes(None, Version(2**63, 0))
        held = {str(change.version) for change in changes}
        missing = [entry_id for entry_id in acknowledged if entry_id not in held]
        assert missing == []
        # Every change is whole: its numbers field decodes to all 100,000 numbers.
        assert all(len(change.fields["numbers"].split(",")) == 100_000 for change in changes[-2:])
        if torn >= 3:
            break
    assert torn >= 1, "no kill landed in mid-write in 30 trials: the test proved nothing"
