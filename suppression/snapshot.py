"""The snapshot file format: write atomically, read, verify. See docs/snapshot-format.md.

Layout (all integers little-endian)::

    0   8 bytes   magic b"SUPPSNAP"
    8   uint32    format version (1)
    12  uint32    header length H
    16  H bytes   header, UTF-8 JSON: data version, creation time, total file
                  size, and per list: name, kind, count, payload offset, length
    ..  payloads  each list's BitMap64.serialize() (portable RoaringFormatSpec,
                  64-bit extension), at the offsets the header gives
    -4  uint32    CRC-32 (zlib) of every byte before it

A file is either verified whole or refused: nothing is deserialized before
the size and checksum match.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pyroaring import BitMap64

from suppression.errors import SnapshotError
from suppression.lists import ListInfo, ListKind, ListView, LogPosition, Version

__all__ = [
    "FORMAT_VERSION",
    "Snapshot",
    "find_newest",
    "read_snapshot",
    "snapshot_name",
    "write_snapshot",
]

logger = logging.getLogger(__name__)

MAGIC = b"SUPPSNAP"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
_TRAILER = struct.Struct("<I")
_NAME_PATTERN = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
_TEMPORARY_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot: its data and where it came from."""

    path: Path
    version: Version
    created_at: float
    bitmaps: dict[str, BitMap64]
    infos: dict[str, ListInfo]
    position: LogPosition = LogPosition()

    def view(self) -> ListView:
        """The snapshot's data as a list view (default lists are the holder's business)."""
        return ListView(self.version, self.bitmaps, self.infos, (), self.position)


def snapshot_name(version: Version) -> str:
    """The file name for a snapshot; names sort in version order."""
    return f"snapshot-{version.ms:020d}-{version.seq:020d}.snap"


def write_snapshot(directory: Path, view: ListView) -> Path:
    """Write ``view`` into ``directory`` atomically (temporary file, fsync, rename).

    Returns:
        The path of the new snapshot.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(view.bitmaps)
    payloads = [view.bitmaps[name].serialize() for name in names]
    entries = []
    offset = 0
    for name, payload in zip(names, payloads, strict=True):
        info = view.infos.get(name, ListInfo(name))
        entries.append(
            {
                "name": name,
                "kind": str(info.kind),
                "count": len(view.bitmaps[name]),
                "offset": offset,
                "length": len(payload),
            }
        )
        offset += len(payload)
    header = {
        "version": str(view.version),
        "log_epoch": view.position.epoch,
        "log_seq": view.position.seq,
        "created_at": time.time(),
        "lists": entries,
        "file_size": 0,
    }
    # The header holds the total size, which depends on the header's own length.
    encoded = b""
    for _ in range(3):
        encoded = json.dumps(header, sort_keys=True).encode()
        size = _PREFIX.size + len(encoded) + offset + _TRAILER.size
        if header["file_size"] == size:
            break
        header["file_size"] = size
    encoded = json.dumps(header, sort_keys=True).encode()
    target = directory / snapshot_name(view.version)
    fd, temp_path = _create_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as out:
            crc = 0
            for chunk in (_PREFIX.pack(MAGIC, FORMAT_VERSION, len(encoded)), encoded, *payloads):
                out.write(chunk)
                crc = zlib.crc32(chunk, crc)
            out.write(_TRAILER.pack(crc))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_path, target)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    logger.info("wrote snapshot %s (version %s, %d lists)", target, view.version, len(names))
    return target


def _create_temporary(directory: Path) -> tuple[int, Path]:
    """Create a new, empty temporary file in ``directory``, open for writing.

    The file gets the mode any new file of this process gets, 0666 less the umask
    (0644 under the usual 022). ``tempfile.mkstemp`` would make it 0600 whatever
    the umask, and the rename keeps that mode: replicas running as another user
    than the writer (a root demo job, the compact job) could not read it.
    ``O_EXCL`` makes the name ours alone, as mkstemp does.

    Raises:
        FileExistsError: no free name was found (practically impossible).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(_TEMPORARY_ATTEMPTS):
        path = directory / f".snapshot-{secrets.token_hex(8)}.tmp"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def read_snapshot(path: Path) -> Snapshot:
    """Read and verify a snapshot; all or nothing.

    Raises:
        SnapshotError: the file is missing, truncated, corrupt or of an
            unknown format version. The message says what to do.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    remedy = "restore it, or delete it to rebuild from an older snapshot and the change log"
    if len(data) < _PREFIX.size + _TRAILER.size:
        raise SnapshotError(f"snapshot {path} is truncated ({len(data):,} bytes); {remedy}")
    magic, format_version, header_length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError(f"{path} is not a snapshot file (bad magic {magic!r})")
    if format_version != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot {path} has format version {format_version}; this build reads "
            f"version {FORMAT_VERSION}: upgrade the server or rebuild the snapshot"
        )
    header_end = _PREFIX.size + header_length
    try:
        header = json.loads(data[_PREFIX.size : header_end])
        expected_size = int(header["file_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot {path} has a corrupt header; {remedy}") from exc
    if len(data) != expected_size:
        raise SnapshotError(
            f"snapshot {path} is truncated or padded (expected {expected_size:,} bytes, "
            f"found {len(data):,}); {remedy}"
        )
    (stored_crc,) = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    view = memoryview(data)
    actual_crc = zlib.crc32(view[: len(data) - _TRAILER.size])
    if stored_crc != actual_crc:
        raise SnapshotError(
            f"snapshot {path} is corrupt (checksum {actual_crc:08x}, expected {stored_crc:08x}); "
            f"{remedy}"
        )
    try:
        version = Version.parse(header["version"])
        position = LogPosition(str(header.get("log_epoch", "")), int(header.get("log_seq", 0)))
        bitmaps: dict[str, BitMap64] = {}
        infos: dict[str, ListInfo] = {}
        for entry in header["lists"]:
            start = header_end + int(entry["offset"])
            # pyroaring reads any buffer; the cast only satisfies its bytes-only stub.
            payload = cast(bytes, view[start : start + int(entry["length"])])
            bitmap = BitMap64.deserialize(payload)
            if len(bitmap) != int(entry["count"]):
                raise SnapshotError(
                    f"snapshot {path}: list {entry['name']!r} holds {len(bitmap):,} numbers, "
                    f"header says {int(entry['count']):,}; {remedy}"
                )
            bitmaps[entry["name"]] = bitmap
            infos[entry["name"]] = ListInfo(entry["name"], ListKind(entry["kind"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot {path} has an invalid header or payload: {exc}") from exc
    name_match = _NAME_PATTERN.match(path.name)
    if name_match is not None and snapshot_name(version) != path.name:
        raise SnapshotError(
            f"snapshot {path} holds version {version}, which its name does not say: it was "
            f"renamed or swapped; restore the right file, or rename it {snapshot_name(version)} "
            "if its content is the one you want"
        )
    created = float(header.get("created_at", 0.0))
    return Snapshot(path, version, created, bitmaps, infos, position)


def find_newest(directory: Path) -> Path | None:
    """The snapshot with the highest version in ``directory``, or None."""
    if not directory.is_dir():
        return None
    candidates = sorted(p for p in directory.iterdir() if _NAME_PATTERN.match(p.name))
    return candidates[-1] if candidates else None
