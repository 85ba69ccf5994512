"""Complaint reports: written atomically, masked, and checked against the segments they cite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suppression.archive import ArchiveOptions, ArchiveReader, ChangeArchive
from suppression.entries import Entry, encode_entry
from suppression.errors import ArchiveError
from suppression.explain import explain
from suppression.explain.report import verify_segments, write_report
from suppression.lists import ListKind, ListView, Op, Version

US = 12125550123


def archive_with_one_change(directory: Path) -> ArchiveReader:
    writer = ChangeArchive(ArchiveOptions(directory, fsync=False))
    writer.open()
    writer.start(ListView(Version(), {}, {}, ()))
    entry = Entry(Op.ADD, "optout", ListKind.OPT_OUT, "app", (US,), actor="app", evidence="e-1")
    fields = {k.encode(): v.encode() for k, v in encode_entry(entry).items()}
    writer.append([(b"5000-0", fields)], ListView(Version(), {}, {}, ()))
    writer.close()
    return ArchiveReader(directory)


def test_a_failed_write_leaves_no_partial_report(tmp_path: Path) -> None:
    reader = archive_with_one_change(tmp_path / "archive")
    explanation = explain(reader, US, Version(5000, 0))
    out = tmp_path / "out"
    out.mkdir()
    # The JSON's name is taken by a directory: the rename fails after the data is written.
    (out / "evidence-1212x123-version-5000-0.json").mkdir()
    with pytest.raises(OSError):
        write_report(explanation, out)
    assert sorted(p.name for p in out.iterdir()) == ["evidence-1212x123-version-5000-0.json"]
    files = write_report(explanation, tmp_path / "elsewhere")
    doc = json.loads(files.json_path.read_text())
    assert doc["number"] == "+1212****123" and doc["number_masked"] is True
    assert str(US) not in files.json_path.read_text() + files.markdown_path.read_text()


def test_a_segment_changed_since_it_was_read_is_refused(tmp_path: Path) -> None:
    reader = archive_with_one_change(tmp_path)
    explanation = explain(reader, US, Version(5000, 0))
    verify_segments(reader, explanation)
    segment = tmp_path / "segment-000001.seg"
    data = bytearray(segment.read_bytes())
    data[20] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="segment-000001.seg no longer matches"):
        verify_segments(reader, explanation)
