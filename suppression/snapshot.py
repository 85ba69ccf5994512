"""The snapshot file format: write atomically, read, verify. See docs/snapshot-format.md.

Layout (all integers little-endian)::

    0   8 bytes   magic b"SUPPSNAP"
    8   uint32    format version: 1 unsigned, 2 signed
    12  uint32    header length H
    16  H bytes   header, UTF-8 JSON: data version, creation time, total file
                  size, and per list: name, kind, count, payload offset, length
    ..  payloads  each list's BitMap64.serialize() (portable RoaringFormatSpec,
                  64-bit extension), at the offsets the header gives
    -4  uint32    CRC-32 (zlib) of every byte before it

A file is either verified whole or refused: nothing is deserialized before
the size and checksum match. Version 2 adds a 32-byte HMAC-SHA256, keyed
with the --snapshot-key-file key, of every byte before it, just before the
CRC-32: a reader with the key refuses a file without a valid one. Versions 3
(unsigned) and 4 (signed) add each dated list's days, a uint16 per number in
rank order, among the payloads (so the CRC and the HMAC cover them); they are
written only when some list carries days, so builds that predate days refuse
such a file rather than load its lists without their days.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap64

from suppression.bitmapslices import deserialize_in_slices
from suppression.errors import SnapshotError, SuppressionError
from suppression.lists import ListInfo, ListKind, ListView, LogPosition, Version
from suppression.policy.dated import DatedList
from suppression.snapshotkey import SIGNATURE_SIZE, SnapshotKey

__all__ = [
    "DATED_FORMAT_VERSION",
    "FORMAT_VERSION",
    "SIGNED_DATED_FORMAT_VERSION",
    "UNSIGNED_FORMAT_VERSION",
    "Snapshot",
    "find_newest",
    "read_snapshot",
    "sign_snapshot",
    "snapshot_name",
    "write_snapshot",
]

logger = logging.getLogger(__name__)

MAGIC = b"SUPPSNAP"
FORMAT_VERSION = 2
"""The newest format: a signed snapshot (an HMAC-SHA256 before the CRC-32)."""
UNSIGNED_FORMAT_VERSION = 1
"""The format written without a key, readable by builds that know only version 1."""
DATED_FORMAT_VERSION = 3
"""Version 1 plus the days of dated lists: written without a key when a list carries days."""
SIGNED_DATED_FORMAT_VERSION = 4
"""Version 2 plus the days of dated lists: written with a key when a list carries days."""
_KNOWN = (
    UNSIGNED_FORMAT_VERSION,
    FORMAT_VERSION,
    DATED_FORMAT_VERSION,
    SIGNED_DATED_FORMAT_VERSION,
)
_SIGNED = (FORMAT_VERSION, SIGNED_DATED_FORMAT_VERSION)
_DAYS = np.dtype("<u2")
SIGNATURE_ALGORITHM = "hmac-sha256"
_PREFIX = struct.Struct("<8sII")
_TRAILER = struct.Struct("<I")
_NAME_PATTERN = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
_TEMPORARY_ATTEMPTS = 100
_READ_BYTES = 1 << 20
"""Bytes per read while checking the CRC-32 and the signature."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot: its data and where it came from."""

    path: Path
    version: Version
    created_at: float
    bitmaps: dict[str, BitMap64]
    infos: dict[str, ListInfo]
    position: LogPosition = LogPosition()
    days: dict[str, DatedList] = field(default_factory=dict)
    """The days of the lists that carry some (format versions 3 and 4), over their bitmaps."""

    def view(self) -> ListView:
        """The snapshot's data as a list view (default lists are the holder's business)."""
        return ListView(self.version, self.bitmaps, self.infos, (), self.position, days=self.days)


def snapshot_name(version: Version) -> str:
    """The file name for a snapshot; names sort in version order."""
    return f"snapshot-{version.ms:020d}-{version.seq:020d}.snap"


def write_snapshot(directory: Path, view: ListView, key: SnapshotKey | None = None) -> Path:
    """Write ``view`` into ``directory`` atomically (temporary file, fsync, rename).

    Args:
        directory: where the snapshot goes; created if missing.
        view: the data to write.
        key: sign the file with this key (format version 2); None writes an
            unsigned version 1 file.

    Returns:
        The path of the new snapshot.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(view.bitmaps)
    payloads: list[bytes] = []
    entries: list[dict[str, object]] = []
    offset = 0
    for name in names:
        payload = view.bitmaps[name].serialize()
        info = view.infos.get(name, ListInfo(name))
        entry: dict[str, object] = {
            "name": name,
            "kind": str(info.kind),
            "count": len(view.bitmaps[name]),
            "offset": offset,
            "length": len(payload),
        }
        payloads.append(payload)
        offset += len(payload)
        dated = view.days.get(name)
        if dated is not None:
            days = dated.days.astype(_DAYS).tobytes()
            entry["days_offset"] = offset
            entry["days_length"] = len(days)
            payloads.append(days)
            offset += len(days)
        entries.append(entry)
    header = {
        "version": str(view.version),
        "log_epoch": view.position.epoch,
        "log_seq": view.position.seq,
        "created_at": time.time(),
        "lists": entries,
        "file_size": 0,
    }
    signature_size = 0
    if key is not None:
        header["signature"] = SIGNATURE_ALGORITHM
        header["key_id"] = key.key_id
        signature_size = SIGNATURE_SIZE
    # The header holds the total size, which depends on the header's own length.
    encoded = b""
    for _ in range(3):
        encoded = json.dumps(header, sort_keys=True).encode()
        size = _PREFIX.size + len(encoded) + offset + signature_size + _TRAILER.size
        if header["file_size"] == size:
            break
        header["file_size"] = size
    encoded = json.dumps(header, sort_keys=True).encode()
    target = directory / snapshot_name(view.version)
    fd, temp_path = _create_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as out:
            crc = 0
            signer = key.signer() if key is not None else None
            format_version = _format_version(signed=key is not None, dated=bool(view.days))
            prefix = _PREFIX.pack(MAGIC, format_version, len(encoded))
            for chunk in (prefix, encoded, *payloads):
                out.write(chunk)
                crc = zlib.crc32(chunk, crc)
                if signer is not None:
                    signer.update(chunk)
            if signer is not None:
                signature = signer.digest()
                out.write(signature)
                crc = zlib.crc32(signature, crc)
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
    logger.info(
        "wrote snapshot %s (version %s, %d lists, %s)",
        target,
        view.version,
        len(names),
        f"signed with key {key.key_id}" if key is not None else "unsigned",
    )
    return target


def _format_version(*, signed: bool, dated: bool) -> int:
    """The oldest format that holds what is written, so older readers read what they can."""
    if dated:
        return SIGNED_DATED_FORMAT_VERSION if signed else DATED_FORMAT_VERSION
    return FORMAT_VERSION if signed else UNSIGNED_FORMAT_VERSION


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


def read_snapshot(path: Path, key: SnapshotKey | None = None) -> Snapshot:
    """Read and verify a snapshot; all or nothing.

    The file is verified whole (size, CRC-32, signature) before anything is
    deserialized, then each list is deserialized a slice at a time
    (:mod:`suppression.bitmapslices`): loading needs the bitmaps plus a few
    MiB, not the file's bytes besides. Both passes read one open file, and a
    file changed in between is refused.

    Args:
        path: the file.
        key: with a key, the file must carry a valid signature by one of its
            keys. Without one, signed and unsigned files are read alike (a
            signature cannot be checked without the key; said at DEBUG).

    Raises:
        SnapshotError: the file is missing, truncated, corrupt, of an unknown
            format version, or (with a key) unsigned or not signed by the key.
            The message says what to do.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    try:
        return _read_open(path, fd, key)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _read_open(path: Path, fd: int, key: SnapshotKey | None) -> Snapshot:
    before = os.fstat(fd)
    size = before.st_size
    remedy = "restore it, or delete it to rebuild from an older snapshot and the change log"
    if size < _PREFIX.size + _TRAILER.size:
        raise SnapshotError(f"snapshot {path} is truncated ({size:,} bytes); {remedy}")
    magic, format_version, header_length = _PREFIX.unpack(os.pread(fd, _PREFIX.size, 0))
    if magic != MAGIC:
        raise SnapshotError(f"{path} is not a snapshot file (bad magic {magic!r})")
    if format_version not in _KNOWN:
        raise SnapshotError(
            f"snapshot {path} has format version {format_version}; this build reads "
            f"versions {', '.join(map(str, _KNOWN))}: upgrade the server or rebuild the snapshot"
        )
    signature_size = SIGNATURE_SIZE if format_version in _SIGNED else 0
    holds_days = format_version in (DATED_FORMAT_VERSION, SIGNED_DATED_FORMAT_VERSION)
    header_end = _PREFIX.size + header_length
    try:
        if header_end > size:
            raise ValueError("header past the end")
        header = json.loads(os.pread(fd, header_length, _PREFIX.size))
        expected_size = int(header["file_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot {path} has a corrupt header; {remedy}") from exc
    if size != expected_size:
        raise SnapshotError(
            f"snapshot {path} is truncated or padded (expected {expected_size:,} bytes, "
            f"found {size:,}); {remedy}"
        )
    (stored_crc,) = _TRAILER.unpack(os.pread(fd, _TRAILER.size, size - _TRAILER.size))
    actual_crc = 0
    for chunk in _chunks(fd, 0, size - _TRAILER.size):
        actual_crc = zlib.crc32(chunk, actual_crc)
    if stored_crc != actual_crc:
        raise SnapshotError(
            f"snapshot {path} is corrupt (checksum {actual_crc:08x}, expected {stored_crc:08x}); "
            f"{remedy}"
        )
    signed_end = size - _TRAILER.size - signature_size
    signature = os.pread(fd, signature_size, signed_end)
    _check_signature(path, lambda: _chunks(fd, 0, signed_end), signature, header, key)
    try:
        version = Version.parse(header["version"])
        position = LogPosition(str(header.get("log_epoch", "")), int(header.get("log_seq", 0)))
        bitmaps: dict[str, BitMap64] = {}
        infos: dict[str, ListInfo] = {}
        days: dict[str, DatedList] = {}
        for entry in header["lists"]:
            start = header_end + int(entry["offset"])
            length = int(entry["length"])
            if start + length > signed_end:
                raise ValueError(f"list {entry['name']!r} runs past the payloads")
            bitmap = deserialize_in_slices(_reader(fd, start), length)
            if len(bitmap) != int(entry["count"]):
                raise SnapshotError(
                    f"snapshot {path}: list {entry['name']!r} holds {len(bitmap):,} numbers, "
                    f"header says {int(entry['count']):,}; {remedy}"
                )
            bitmaps[entry["name"]] = bitmap
            infos[entry["name"]] = ListInfo(entry["name"], ListKind(entry["kind"]))
            if holds_days and "days_offset" in entry:
                days[entry["name"]] = _read_days(fd, header_end, entry, bitmap, signed_end)
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot {path} has an invalid header or payload: {exc}") from exc
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ):
        raise SnapshotError(
            f"snapshot {path} changed while it was being read: something writes into it in "
            "place (snapshots are only ever replaced by a rename); find what, then restart"
        )
    name_match = _NAME_PATTERN.match(path.name)
    if name_match is not None and snapshot_name(version) != path.name:
        raise SnapshotError(
            f"snapshot {path} holds version {version}, which its name does not say: it was "
            f"renamed or swapped; restore the right file, or rename it {snapshot_name(version)} "
            "if its content is the one you want"
        )
    created = float(header.get("created_at", 0.0))
    return Snapshot(path, version, created, bitmaps, infos, position, days)


def _read_days(
    fd: int, header_end: int, entry: dict[str, object], bitmap: BitMap64, signed_end: int
) -> DatedList:
    """A list's days section: one little-endian uint16 per number, in rank order.

    Raises:
        ValueError: the section runs past the payloads or holds not one day per number.
    """
    start = header_end + int(str(entry["days_offset"]))
    length = int(str(entry["days_length"]))
    if start + length > signed_end or length != 2 * len(bitmap):
        raise ValueError(f"list {entry['name']!r} has a days section that does not fit it")
    raw = os.pread(fd, length, start)
    if len(raw) != length:
        raise ValueError(f"list {entry['name']!r}: the days section ended early")
    return DatedList(bitmap, np.frombuffer(raw, dtype=_DAYS).astype(np.uint16))


def _reader(fd: int, start: int) -> Callable[[int, int], bytes]:
    """``read(offset, size)`` over the bytes of ``fd`` from ``start`` on."""

    def read(offset: int, size: int) -> bytes:
        return os.pread(fd, size, start + offset)

    return read


def _chunks(fd: int, start: int, end: int) -> Iterator[bytes]:
    """The bytes of ``fd`` from ``start`` to ``end``, in chunks of at most ``_READ_BYTES``."""
    position = start
    while position < end:
        chunk = os.pread(fd, min(_READ_BYTES, end - position), position)
        if not chunk:
            raise OSError(errno.EIO, "the file ended early")
        yield chunk
        position += len(chunk)


def _check_signature(
    path: Path,
    signed: Callable[[], Iterable[bytes]],
    signature: bytes,
    header: dict[str, object],
    key: SnapshotKey | None,
) -> None:
    """Refuse a file that ``key`` did not sign; without a key, only say what is not checked.

    Args:
        path: the file, for messages.
        signed: the signed bytes, read again on each call.
        signature: the stored signature (empty for an unsigned format).
        header: the file's header.
        key: the key, if any.

    Raises:
        SnapshotError: with a key, the file is unsigned or its signature is not
            one of the key's.
    """
    signed_by = str(header.get("key_id", "?"))
    if key is None:
        if signature:
            logger.debug(
                "snapshot %s is signed (key %s), but no --snapshot-key-file is set: "
                "its signature is not checked",
                path,
                signed_by,
            )
        return
    if not signature:
        raise SnapshotError(
            f"snapshot {path} is not signed, and {key.source or 'the snapshot key'} requires "
            "signed snapshots: it may have been crafted. Restore a signed snapshot, or re-sign "
            "a trusted one with suppression-loader compact and the key"
        )
    if header.get("signature") != SIGNATURE_ALGORITHM:
        raise SnapshotError(
            f"snapshot {path} names signature {header.get('signature')!r}, not "
            f"{SIGNATURE_ALGORITHM!r}: it was crafted or written by a newer build; restore a "
            "snapshot signed by this build"
        )
    if not key.verifies(signed(), signature):
        ids = ", ".join(key.key_ids)
        raise SnapshotError(
            f"snapshot {path} has an invalid signature (it says key {signed_by}; this process "
            f"has key(s) {ids}): it was altered after signing or signed with another key. "
            "Do not load it: restore a snapshot signed with the current key, or, if it was "
            "signed with a retired key you still trust, add that key to the key file"
        )


def find_newest(directory: Path) -> Path | None:
    """The snapshot with the highest version in ``directory``, or None."""
    if not directory.is_dir():
        return None
    candidates = sorted(p for p in directory.iterdir() if _NAME_PATTERN.match(p.name))
    return candidates[-1] if candidates else None


def sign_snapshot(path: Path, key: SnapshotKey) -> Path:
    """Rewrite a snapshot signed with ``key``, in place (atomically); for turning signing on.

    The file is read without a key (checked as always: size, CRC-32, counts,
    name), so signing it vouches for its content: sign only a file you trust.

    Returns:
        The path written (the same name: the version does not change).

    Raises:
        SnapshotError: the file is unreadable, corrupt or misnamed.
    """
    snapshot = read_snapshot(path)
    written = write_snapshot(path.parent, snapshot.view(), key)
    if written != path:
        # An unconventional name: keep the original and say where the signed copy went.
        logger.warning("signed %s as %s", path, written)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m suppression.snapshot sign --snapshot-key-file PATH FILE...``.

    Exit code 0 when every file was signed, 2 on the first error (one line on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m suppression.snapshot",
        description="Sign existing snapshots with a key, to turn signing on "
        "(see docs/operations.md). Sign only files you trust.",
    )
    parser.add_argument("action", choices=("sign",))
    parser.add_argument("--snapshot-key-file", type=Path, required=True, metavar="PATH")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        key = SnapshotKey.from_file(args.snapshot_key_file)
        for path in args.files:
            sign_snapshot(path, key)
    except SuppressionError as exc:
        print(f"python -m suppression.snapshot: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
