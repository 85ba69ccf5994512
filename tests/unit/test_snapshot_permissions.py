"""Snapshot files get the permissions of a normal file under the process umask.

Replicas often run as another user than the process that wrote the snapshot (the
compose demo job runs as root, the replicas as uid 10001; the Kubernetes compact
job writes to a volume the replicas read), so a snapshot readable only by its
owner stops the whole stack from starting.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loader.cli import main as loader_main
from suppression.lists import Version
from suppression.snapshot import read_snapshot, write_snapshot
from tests.samples import make_lists

# The image's unprivileged user (deploy/Dockerfile).
OTHER_UID = 10001


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask whatever the test sets."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)],
    ids=["umask-022", "umask-027", "umask-077", "umask-002"],
)
def test_snapshot_mode_is_0666_less_the_umask(tmp_path: Path, mask: int, expected: int) -> None:
    os.umask(mask)
    path = write_snapshot(tmp_path, make_lists().view)
    assert mode(path) == expected, f"mode {mode(path):o} under umask {mask:03o}"
    assert read_snapshot(path).version == make_lists().version
    # Still written through a temporary file that is renamed: nothing else is left.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.usefixtures("umask")
def test_a_second_snapshot_gets_the_same_mode(tmp_path: Path) -> None:
    os.umask(0o022)
    first = write_snapshot(tmp_path, make_lists().view)
    second = write_snapshot(tmp_path, make_lists(Version(1700000000001, 0)).view)
    assert first != second
    assert mode(first) == mode(second) == 0o644


@pytest.mark.usefixtures("umask")
def test_the_loader_writes_snapshots_with_the_same_mode(tmp_path: Path) -> None:
    # suppression-loader import (bootstrap) and compact both write through write_snapshot.
    os.umask(0o022)
    numbers = tmp_path / "optouts.txt"
    numbers.write_text("+8613800138000\n+12125550123\n")
    data = tmp_path / "data"
    argv = ["import", str(numbers), "--list-name", "internal", "--kind", "opt_out", "--create-list"]
    assert loader_main([*argv, "--input-format", "plain", "--data-dir", str(data)]) == 0
    (path,) = data.glob("snapshot-*.snap")
    assert mode(path) == 0o644


@pytest.mark.usefixtures("umask")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write as one user, read as another")
def test_a_snapshot_written_by_root_is_readable_by_the_replica_user() -> None:
    # As in deploy/docker-compose.yml: the demo job (root, umask 022) writes, a replica
    # (uid 10001) reads. Not tmp_path: its parents are private to root.
    os.umask(0o022)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        directory.chmod(0o755)
        path = write_snapshot(directory, make_lists().view)
        result = subprocess.run(
            ["head", "-c", "8", str(path)],
            user=OTHER_UID,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"SUPPSNAP"
