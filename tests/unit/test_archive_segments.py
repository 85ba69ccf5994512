"""The archive's segments: append, torn tails cut, damage reported, coverage never guessed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from pyroaring import BitMap64

from suppression.archive import ArchiveOptions, ArchiveReader, ChangeArchive
from suppression.archive.index import read_index
from suppression.archive.segment import HEADER, scan_records
from suppression.entries import Entry, encode_entry
from suppression.errors import ArchiveCoverageError, ArchiveError
from suppression.lists import ListKind, ListView, Op, Version

A = 14155550100
B = 14155550101


def raw(ms: int, op: Op, numbers: tuple[int, ...], list_name: str = "optout", seq: int = 0):
    entry = Entry(
        op,
        list_name,
        ListKind.CAMPAIGN,
        "in_call",
        numbers,
        actor="agent-7",
        evidence=f"call-{ms}",
        timestamp_ms=ms,
    )
    fields: Mapping[bytes, bytes] = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
    return (f"{ms}-{seq}".encode(), fields)


def empty_view(version: Version | None = None) -> ListView:
    return ListView(version or Version(), {}, {}, ())


def archive(directory: Path, **kwargs: object) -> ChangeArchive:
    options = ArchiveOptions(directory, fsync=False, **kwargs)  # type: ignore[arg-type]
    writer = ChangeArchive(options)
    writer.open()
    return writer


def test_appended_changes_are_read_back_in_order(tmp_path: Path) -> None:
    writer = archive(tmp_path)
    writer.start(empty_view())
    writer.append(
        [raw(1000, Op.ADD, (A,)), raw(2000, Op.ADD, (B,)), raw(3000, Op.REMOVE, (A,))], empty_view()
    )
    writer.close()
    changes, used = ArchiveReader(tmp_path).changes(None, Version(5000, 0), A)
    assert [str(c.version) for c in changes] == ["1000-0", "3000-0"]
    assert [c.entry().op for c in changes] == [Op.ADD, Op.REMOVE]
    assert [u.name for u in used] == ["segment-000001.seg"]


def test_entries_the_archive_holds_are_not_appended_twice(tmp_path: Path) -> None:
    writer = archive(tmp_path)
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,)), raw(2000, Op.ADD, (B,))], empty_view())
    writer.append([raw(2000, Op.ADD, (B,)), raw(3000, Op.ADD, (A,))], empty_view())
    writer.close()
    changes, _ = ArchiveReader(tmp_path).changes(None, Version(9000, 0))
    assert [str(c.version) for c in changes] == ["1000-0", "2000-0", "3000-0"]


def test_one_writer_per_directory(tmp_path: Path) -> None:
    first = archive(tmp_path)
    with pytest.raises(ArchiveError, match="another process writes"):
        archive(tmp_path)
    first.close()
    archive(tmp_path).close()


def test_a_torn_tail_is_cut_at_every_byte_it_can_end(tmp_path: Path) -> None:
    source = tmp_path / "source"
    writer = archive(source)
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,))], empty_view())
    segment = source / "segment-000001.seg"
    good = segment.stat().st_size
    writer.append([raw(2000, Op.ADD, (B,))], empty_view())
    writer.close()
    whole = segment.read_bytes()
    for cut in range(good + 1, len(whole)):
        directory = tmp_path / f"cut{cut}"
        (directory / "checkpoints").mkdir(parents=True)
        (directory / segment.name).write_bytes(whole[:cut])
        reopened = ChangeArchive(ArchiveOptions(directory, fsync=False))
        report = reopened.open()
        assert report.cut is not None and "segment-000001.seg" in report.cut
        assert f"byte {good:,}" in report.cut
        assert report.end == Version(1000, 0)
        assert (directory / segment.name).stat().st_size == good
        reopened.append([raw(2000, Op.ADD, (B,))], empty_view())
        reopened.close()
        assert (directory / segment.name).read_bytes() == whole


def test_a_corrupt_segment_is_reported_and_the_rest_stays_usable(tmp_path: Path) -> None:
    writer = archive(tmp_path, segment_bytes=1)  # every batch starts a segment
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,))], empty_view())
    writer.append([raw(2000, Op.ADD, (B,)), raw(2500, Op.REMOVE, (B,))], empty_view())
    writer.append([raw(3000, Op.ADD, (A, B))], empty_view())
    writer.close()
    second = tmp_path / "segment-000003.seg"
    data = bytearray(second.read_bytes())
    records, _ = scan_records(bytes(data))
    broken = records[1].offset
    data[broken + 12] ^= 0xFF  # a byte inside the second record's body
    second.write_bytes(bytes(data))
    reader = ArchiveReader(tmp_path)
    catalog = reader.catalog()
    assert catalog.damage == (
        f"segment-000003.seg: record at byte {broken:,} fails its CRC-32 check",
    )
    changes, _ = reader.changes(None, Version(9000, 0))
    assert [str(c.version) for c in changes] == ["1000-0", "2000-0", "3000-0"]
    # Before the damage: answered. After it: not, since nothing re-anchors the data.
    base, _ = reader.base_for(Version(2000, 0))
    assert base.version == Version()
    with pytest.raises(ArchiveCoverageError, match="lost changes after 2000-0"):
        reader.base_for(Version(3000, 0))


def test_reopening_after_damage_writes_a_base_that_answers_again(tmp_path: Path) -> None:
    writer = archive(tmp_path)
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,)), raw(2000, Op.ADD, (B,))], empty_view())
    writer.close()
    segment = tmp_path / "segment-000001.seg"
    data = bytearray(segment.read_bytes())
    records, _ = scan_records(bytes(data))
    data[records[1].offset + 12] ^= 0xFF
    data += b"more bytes after the damage"
    segment.write_bytes(bytes(data))
    reopened = ChangeArchive(ArchiveOptions(tmp_path, fsync=False))
    report = reopened.open()
    assert report.cut is None
    assert report.damage and "segment-000001.seg" in report.damage[0]
    lists_at_3000 = ListView(
        Version(3000, 0), {"optout": BitMap64([A, B])}, {}, (), position=_no_position()
    )
    reopened.start(lists_at_3000)
    reopened.append([raw(4000, Op.REMOVE, (A,))], empty_view())
    reopened.close()
    assert segment.read_bytes() == bytes(data), "the damaged segment is kept as evidence"
    reader = ArchiveReader(tmp_path)
    with pytest.raises(ArchiveCoverageError):
        reader.base_for(Version(2500, 0))
    base, _ = reader.base_for(Version(4000, 0))
    assert base.version == Version(3000, 0) and base.reason == "gap"


def _no_position():  # type: ignore[no-untyped-def]
    from suppression.lists import LogPosition

    return LogPosition()


def test_before_the_archive_begins_is_answered_as_such(tmp_path: Path) -> None:
    writer = archive(tmp_path)
    writer.start(ListView(Version(5000, 0), {"optout": BitMap64([A])}, {}, ()))
    writer.append([raw(6000, Op.ADD, (B,))], empty_view())
    writer.close()
    reader = ArchiveReader(tmp_path)
    with pytest.raises(ArchiveCoverageError, match="before the archive begins"):
        reader.base_for(Version(4999, 0))
    with pytest.raises(ArchiveCoverageError, match="after the archive's last change"):
        reader.base_for(Version(7000, 0))
    base, _ = reader.base_for(Version(7000, 0), known_until=Version(8000, 0))
    assert base.version == Version(5000, 0) and base.checkpoint


def test_an_empty_archive_answers_nothing(tmp_path: Path) -> None:
    with pytest.raises(ArchiveCoverageError, match="is empty"):
        ArchiveReader(tmp_path).base_for(Version(1, 0))


def test_sealed_segments_get_an_index_that_finds_numbers(tmp_path: Path) -> None:
    writer = archive(tmp_path, segment_bytes=1)
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,))], empty_view())
    writer.append([raw(2000, Op.ADD_RANGE, (), "block")], empty_view())
    writer.append([raw(3000, Op.ADD, (B,))], empty_view())
    writer.close()
    reader = ArchiveReader(tmp_path)
    changes, used = reader.changes(None, Version(9000, 0), B)
    assert [u.name for u in used] == ["segment-000004.seg"]
    assert [str(c.version) for c in changes] == ["3000-0"]
    index = read_index(
        tmp_path / "segment-000002.idx", (tmp_path / "segment-000002.seg").stat().st_size
    )
    assert index is not None and A in index.numbers and B not in index.numbers


def test_a_stale_index_is_rebuilt(tmp_path: Path) -> None:
    writer = archive(tmp_path, segment_bytes=1)
    writer.start(empty_view())
    writer.append([raw(1000, Op.ADD, (A,))], empty_view())
    writer.append([raw(2000, Op.ADD, (B,))], empty_view())
    writer.close()
    ArchiveReader(tmp_path).catalog()
    (tmp_path / "segment-000002.idx").write_bytes(b"SUPPAIDX garbage")
    changes, _ = ArchiveReader(tmp_path).changes(None, Version(9000, 0), A)
    assert [str(c.version) for c in changes] == ["1000-0"]


def test_a_new_segment_starts_with_the_header(tmp_path: Path) -> None:
    writer = archive(tmp_path)
    writer.start(empty_view())
    writer.close()
    assert (tmp_path / "segment-000001.seg").read_bytes().startswith(HEADER)


def test_a_skipped_sequence_number_makes_the_archive_rebase_from_the_data(tmp_path: Path) -> None:
    def stamped(ms: int, seq: int, number: int):  # type: ignore[no-untyped-def]
        entry_id, fields = raw(ms, Op.ADD, (number,))
        return entry_id, {**fields, b"epoch": b"e" * 32, b"seq": str(seq).encode()}

    writer = archive(tmp_path)
    writer.start(empty_view())
    writer.append([stamped(1000, 1, A)], empty_view())
    # Entries 2-3 were applied without the archive (a resync it missed): the data is at 3000.
    at_3000 = ListView(
        Version(3000, 0), {"optout": BitMap64([A, B])}, {}, (), _position("e" * 32, 3)
    )
    writer.append([stamped(4000, 4, A)], at_3000)
    writer.close()
    reader = ArchiveReader(tmp_path)
    assert [b.reason for b in reader.catalog().bases] == ["start", "gap"]
    with pytest.raises(ArchiveCoverageError, match="lost changes after 1000-0"):
        reader.base_for(Version(2000, 0))
    assert reader.base_for(Version(4000, 0))[0].version == Version(3000, 0)


def _position(epoch: str, seq: int):  # type: ignore[no-untyped-def]
    from suppression.lists import LogPosition

    return LogPosition(epoch, seq)


def test_retention_deletes_old_segments_only_behind_a_later_checkpoint(tmp_path: Path) -> None:
    import time

    from suppression.snapshot import write_snapshot

    day = 86_400_000
    old = int(time.time() * 1000) - 10 * day  # ten days ago
    snapshots = tmp_path / "data"
    writer = archive(tmp_path / "archive", segment_bytes=1, retention_days=5.0, snapshots=snapshots)
    writer.start(empty_view(Version(old, 0)))
    writer.append([raw(old + 1000, Op.ADD, (A,))], empty_view())
    # A regular snapshot at that point: the next segment starts with it as a checkpoint.
    write_snapshot(snapshots, ListView(Version(old + 1000, 0), {"optout": BitMap64([A])}, {}, ()))
    writer.append([raw(old + 2000, Op.ADD, (B,))], empty_view())
    write_snapshot(
        snapshots, ListView(Version(old + 2000, 0), {"optout": BitMap64([A, B])}, {}, ())
    )
    recent = int(time.time() * 1000)
    writer.append([raw(recent, Op.REMOVE, (A,))], empty_view())
    writer.append([raw(recent + 1, Op.REMOVE, (B,))], empty_view())
    writer.close()
    reader = ArchiveReader(tmp_path / "archive")
    catalog = reader.catalog()
    names = [s.name for s in catalog.segments]
    # 1: the start base; 2, 3: old changes, each backed by the checkpoint the next one starts
    # with; 4 holds a recent change, 5 is the one being written.
    assert names == ["segment-000004.seg", "segment-000005.seg"]
    assert catalog.begins == Version(old + 2000, 0)
    with pytest.raises(ArchiveCoverageError, match="before the archive begins"):
        reader.base_for(Version(old + 1500, 0))
    checkpoints = sorted(p.name for p in (tmp_path / "archive" / "checkpoints").iterdir())
    assert checkpoints == [f"snapshot-{old + 2000:020d}-{0:020d}.snap"]
    base, _ = reader.base_for(Version(recent, 0))
    assert base.checkpoint and (tmp_path / "archive" / "checkpoints" / base.checkpoint).is_file()
    changes, _ = reader.changes(None, Version(recent + 1, 0))
    assert Version(recent + 1, 0) in [c.version for c in changes]
