"""Signed snapshots: a key makes a crafted, unsigned or foreign-signed file detectable."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

import pytest

from suppression.datasource import DataSource, load_lists
from suppression.errors import ConfigError, SnapshotError
from suppression.replica import Replica
from suppression.snapshot import (
    FORMAT_VERSION,
    UNSIGNED_FORMAT_VERSION,
    main,
    read_snapshot,
    sign_snapshot,
    write_snapshot,
)
from suppression.snapshotkey import SnapshotKey
from tests.samples import KEY, OTHER_KEY, craft, make_lists, write_key_file

CRAFTED = 12025550147


def format_of(path: Path) -> int:
    return int(struct.unpack_from("<8sI", path.read_bytes())[1])


def test_signed_round_trip(tmp_path: Path) -> None:
    key = SnapshotKey((KEY,))
    lists = make_lists()
    path = write_snapshot(tmp_path, lists.view, key)
    assert format_of(path) == FORMAT_VERSION
    loaded = read_snapshot(path, key)
    assert loaded.version == lists.version
    assert loaded.bitmaps == dict(lists.view.bitmaps)


def test_without_a_key_files_stay_unsigned_version_1(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    assert format_of(path) == UNSIGNED_FORMAT_VERSION


def test_a_crafted_file_passes_the_crc_but_not_the_signature(tmp_path: Path) -> None:
    key = SnapshotKey((KEY,))
    path = write_snapshot(tmp_path, make_lists().view, key)
    craft(path)
    # The CRC-32 alone cannot tell: without the key the crafted number is served.
    assert CRAFTED in read_snapshot(path).bitmaps["internal"]
    with pytest.raises(SnapshotError, match="invalid signature.*altered after signing"):
        read_snapshot(path, key)


def test_a_flipped_payload_byte_with_the_crc_recomputed_is_refused(tmp_path: Path) -> None:
    key = SnapshotKey((KEY,))
    path = write_snapshot(tmp_path, make_lists().view, key)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # the last payload byte, before the 32-byte signature and the CRC
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[:-4]))
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="invalid signature"):
        read_snapshot(path, key)


def test_an_unsigned_file_is_refused_with_a_key(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view)
    with pytest.raises(SnapshotError, match="is not signed.*requires signed snapshots"):
        read_snapshot(path, SnapshotKey((KEY,)))


def test_a_file_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, make_lists().view, SnapshotKey((OTHER_KEY,)))
    key = SnapshotKey((KEY,))
    with pytest.raises(SnapshotError, match="signed with another key") as refused:
        read_snapshot(path, key)
    assert SnapshotKey((OTHER_KEY,)).key_id in str(refused.value)
    assert KEY.decode() not in str(refused.value)


def test_every_key_in_the_file_verifies_and_the_first_signs(tmp_path: Path) -> None:
    rotating = SnapshotKey((KEY, OTHER_KEY))
    old = write_snapshot(tmp_path / "old", make_lists().view, SnapshotKey((OTHER_KEY,)))
    assert read_snapshot(old, rotating).version == make_lists().version
    new = write_snapshot(tmp_path / "new", make_lists().view, rotating)
    read_snapshot(new, SnapshotKey((KEY,)))
    with pytest.raises(SnapshotError, match="invalid signature"):
        read_snapshot(new, SnapshotKey((OTHER_KEY,)))


def test_signed_files_are_read_without_a_key_and_said_so_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_snapshot(tmp_path, make_lists().view, SnapshotKey((KEY,)))
    with caplog.at_level(logging.DEBUG, logger="suppression.snapshot"):
        assert read_snapshot(path).version == make_lists().version
    assert "its signature is not checked" in caplog.text


def test_key_file_round_trip_and_repr_hides_the_key(tmp_path: Path) -> None:
    key = SnapshotKey.from_file(write_key_file(tmp_path / "key", KEY, OTHER_KEY))
    assert key.keys == (KEY, OTHER_KEY)
    assert KEY.decode() not in repr(key)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "key", KEY)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by every user.*chmod 600"):
        SnapshotKey.from_file(path)


def test_key_file_readable_by_another_group_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_key_file(tmp_path / "key", KEY)
    path.chmod(0o640)
    other = next(gid for gid in (1, 2, 100, 65534) if gid != os.getegid())
    try:
        os.chown(path, -1, other)
    except PermissionError:
        pytest.skip("cannot give the file another group without privileges")
    with caplog.at_level(logging.WARNING, logger="suppression.snapshotkey"):
        SnapshotKey.from_file(path)
    assert "readable by its group" in caplog.text


def test_key_file_readable_by_its_own_group_is_quietly_accepted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As a Kubernetes Secret mounted with defaultMode 0400 and fsGroup: 0440, the pod's group.
    path = write_key_file(tmp_path / "key", KEY)
    os.chown(path, -1, os.getegid())
    path.chmod(0o440)
    with caplog.at_level(logging.WARNING, logger="suppression.snapshotkey"):
        assert SnapshotKey.from_file(path).keys == (KEY,)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "holds no key"), (b"\n  \n", "holds no key"), (b"short\n", "line 1 has 5 bytes")],
)
def test_empty_or_short_key_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=message):
        SnapshotKey.from_file(path)


def test_missing_key_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        SnapshotKey.from_file(tmp_path / "absent")


def test_sign_snapshot_turns_an_unsigned_file_into_a_signed_one(tmp_path: Path) -> None:
    key = SnapshotKey((KEY,))
    lists = make_lists()
    path = write_snapshot(tmp_path, lists.view)
    assert sign_snapshot(path, key) == path
    assert format_of(path) == FORMAT_VERSION
    assert read_snapshot(path, key).bitmaps == dict(lists.view.bitmaps)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_sign_command_refuses_a_corrupt_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = write_key_file(tmp_path / "key", KEY)
    path = write_snapshot(tmp_path / "data", make_lists().view)
    assert main(["sign", "--snapshot-key-file", str(key_file), str(path)]) == 0
    read_snapshot(path, SnapshotKey((KEY,)))
    path.write_bytes(path.read_bytes()[:-1])
    assert main(["sign", "--snapshot-key-file", str(key_file), str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_worker_handed_loaded_data_keeps_the_key(tmp_path: Path) -> None:
    # Forked workers get LoadedData, not a DataSource: the key must travel with it.
    key = SnapshotKey((KEY,))
    write_snapshot(tmp_path, make_lists().view, key)
    loaded = load_lists(DataSource(data_dir=tmp_path, snapshot_key=key))
    assert loaded.snapshot_key is key
    assert Replica(loaded).snapshot_key is key
