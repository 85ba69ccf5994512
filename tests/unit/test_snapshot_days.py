"""Snapshots with days (format versions 3 and 4), and older snapshots that still load."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from pyroaring import BitMap64

from suppression.datasource import DataSource, load_lists
from suppression.errors import SnapshotError
from suppression.lists import Change, ListInfo, ListKind, Op, SuppressionLists, Version
from suppression.snapshot import (
    DATED_FORMAT_VERSION,
    SIGNED_DATED_FORMAT_VERSION,
    UNSIGNED_FORMAT_VERSION,
    read_snapshot,
    write_snapshot,
)
from suppression.snapshotkey import SnapshotKey
from tests.samples import KEY

A, B, C = 12125550100, 12125550101, 8613800138000


def format_of(path: Path) -> int:
    return int(struct.unpack_from("<8sI", path.read_bytes())[1])


def dated_lists() -> SuppressionLists:
    lists = SuppressionLists()
    lists.apply(
        [
            Change(Op.ADD, "ebr", (A, B), kind=ListKind.CAMPAIGN, days=(20_400, 20_512)),
            Change(Op.ADD, "ebr", (C,), kind=ListKind.CAMPAIGN),  # no day
            Change(Op.ADD, "optout", (A,), kind=ListKind.OPT_OUT),
        ]
    )
    return lists


@pytest.mark.parametrize("signed", [False, True])
def test_days_round_trip(tmp_path: Path, signed: bool) -> None:
    key = SnapshotKey((KEY,)) if signed else None
    view = dated_lists().view
    path = write_snapshot(tmp_path, view, key)
    assert format_of(path) == (SIGNED_DATED_FORMAT_VERSION if signed else DATED_FORMAT_VERSION)
    loaded = read_snapshot(path, key)
    assert set(loaded.days) == {"ebr"}
    probe = np.array([A, B, C, 12125550199], dtype=np.uint64)
    assert loaded.days["ebr"].lookup(probe).tolist() == [20_400, 20_512, -1, -1]
    assert loaded.days["ebr"].bitmap is loaded.bitmaps["ebr"]
    # Through the data source, as a replica starts.
    data = load_lists(DataSource(data_dir=tmp_path, snapshot_key=key))
    assert data.lists.view.days["ebr"].lookup(probe).tolist() == [20_400, 20_512, -1, -1]


def test_plain_data_stays_version_1_without_days_fields(tmp_path: Path) -> None:
    lists = SuppressionLists({"optout": BitMap64([A])}, [ListInfo("optout")])
    path = write_snapshot(tmp_path, lists.view)
    assert format_of(path) == UNSIGNED_FORMAT_VERSION
    assert b"days_offset" not in path.read_bytes()


def test_the_crc_and_the_signature_cover_the_days(tmp_path: Path) -> None:
    view = dated_lists().view
    days_at = _days_section(write_snapshot(tmp_path / "plain", view))
    path = next((tmp_path / "plain").glob("*.snap"))
    data = bytearray(path.read_bytes())
    data[days_at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="is corrupt"):
        read_snapshot(path)

    key = SnapshotKey((KEY,))
    signed = write_snapshot(tmp_path / "signed", view, key)
    data = bytearray(signed.read_bytes())
    data[_days_section(signed)] ^= 0x01
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[:-4]))
    signed.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="invalid signature"):
        read_snapshot(signed, key)


def test_a_days_section_that_does_not_fit_its_list_is_refused(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, dated_lists().view)
    raw = path.read_bytes()
    _, version, length = struct.unpack_from("<8sII", raw)
    header = json.loads(raw[16 : 16 + length])
    entry = next(e for e in header["lists"] if e["name"] == "ebr")
    entry["days_length"] -= 2
    _rewrite(path, version, header, raw[16 + length : -4])
    with pytest.raises(SnapshotError, match="days section that does not fit"):
        read_snapshot(path)


def test_a_version_1_file_written_to_the_documented_layout_still_loads(tmp_path: Path) -> None:
    """An older snapshot, built here byte by byte from docs/snapshot-format.md, not our writer."""
    payload = BitMap64([A, C]).serialize()
    header = {
        "version": "1700000000000-4",
        "created_at": 1.0,
        "file_size": 0,
        "lists": [
            {"name": "optout", "kind": "opt_out", "count": 2, "offset": 0, "length": len(payload)}
        ],
    }
    path = tmp_path / "snapshot-00000001700000000000-00000000000000000004.snap"
    _rewrite(path, 1, header, payload)
    loaded = read_snapshot(path)
    assert loaded.version == Version(1_700_000_000_000, 4)
    assert set(loaded.bitmaps["optout"]) == {A, C}
    assert loaded.days == {}
    lists = load_lists(DataSource(data_dir=tmp_path)).lists
    assert lists.view.days == {}
    # Days arrive by the change log onto the old data.
    lists.apply([Change(Op.ADD, "optout", (A,), days=(20_000,))])
    assert lists.view.days["optout"].lookup(np.array([A, C], dtype=np.uint64)).tolist() == [
        20_000,
        -1,
    ]


def _days_section(path: Path) -> int:
    raw = path.read_bytes()
    length = struct.unpack_from("<8sII", raw)[2]
    header = json.loads(raw[16 : 16 + length])
    entry = next(e for e in header["lists"] if e["name"] == "ebr")
    return int(16 + length + entry["days_offset"])


def _rewrite(path: Path, version: int, header: dict[str, object], payloads: bytes) -> None:
    """A snapshot file of ``version`` with this header and payloads, sized and checksummed."""
    for _ in range(3):
        encoded = json.dumps(header, sort_keys=True).encode()
        header["file_size"] = 16 + len(encoded) + len(payloads) + 4
    encoded = json.dumps(header, sort_keys=True).encode()
    body = struct.pack("<8sII", b"SUPPSNAP", version, len(encoded)) + encoded + payloads
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
