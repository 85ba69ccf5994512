from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from suppression.errors import SnapshotError
from suppression.lists import ListKind, Version
from suppression.snapshot import (
    SIGNED_DATED_FORMAT_VERSION,
    UNSIGNED_FORMAT_VERSION,
    find_newest,
    read_snapshot,
    snapshot_name,
    write_snapshot,
)
from tests.samples import make_lists


def test_round_trip(tmp_path: Path) -> None:
    lists = make_lists()
    path = write_snapshot(tmp_path, lists.view)
    assert path.name == snapshot_name(lists.version)
    loaded = read_snapshot(path)
    assert loaded.version == lists.version
    assert set(loaded.bitmaps) == {"national", "internal", "empty"}
    for name, bitmap in lists.view.bitmaps.items():
        assert loaded.bitmaps[name] == bitmap
    assert loaded.infos["national"].kind is ListKind.REGISTRY
    assert loaded.infos["empty"].kind is ListKind.CAMPAIGN
    assert loaded.infos["internal"].kind is ListKind.OPT_OUT
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_header_is_documented_json(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    data = path.read_bytes()
    magic, version, header_length = struct.unpack_from("<8sII", data)
    assert (magic, version) == (b"SUPPSNAP", UNSIGNED_FORMAT_VERSION)
    header = json.loads(data[16 : 16 + header_length])
    assert header["file_size"] == len(data)
    assert header["version"] == "1700000000000-3"
    assert {entry["name"] for entry in header["lists"]} == {"national", "internal", "empty"}


def test_truncated_file_is_refused_with_sizes(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    size = path.stat().st_size
    os.truncate(path, size - 100)
    with pytest.raises(SnapshotError, match=rf"expected {size:,} bytes, found {size - 100:,}"):
        read_snapshot(path)
    os.truncate(path, 10)
    with pytest.raises(SnapshotError, match="truncated"):
        read_snapshot(path)


@pytest.mark.parametrize("where", [-5, -200, 40])
def test_any_flipped_byte_is_refused(tmp_path: Path, where: int) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    data = bytearray(path.read_bytes())
    data[where] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="corrupt"):
        read_snapshot(path)


def test_other_files_and_versions(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert find_newest(tmp_path) is None
    write_snapshot(tmp_path, make_lists(Version(5, 0)).view)
    newest = write_snapshot(tmp_path, make_lists(Version(10, 0)).view)
    write_snapshot(tmp_path, make_lists(Version(9, 99)).view)
    assert find_newest(tmp_path) == newest
    bogus = tmp_path / "bogus.snap"
    bogus.write_bytes(b"NOTASNAP" + bytes(20))
    with pytest.raises(SnapshotError, match="not a snapshot"):
        read_snapshot(bogus)
    with pytest.raises(SnapshotError, match="cannot read"):
        read_snapshot(tmp_path / "missing.snap")


def test_future_format_version_is_refused(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, SIGNED_DATED_FORMAT_VERSION + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=f"format version {SIGNED_DATED_FORMAT_VERSION + 1}"):
        read_snapshot(path)
