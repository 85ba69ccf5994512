"""A lead file's bytes as a stream of blocks that end at line ends, plain or gunzipped.

A scrub never holds the whole input: it reads blocks of a few MiB, each cut
just after its last line end (LF, or a CR not followed by LF), so a block
decodes on its own in any ASCII-compatible encoding (UTF-8, GB18030, Latin-1:
their multi-byte characters never contain the bytes of CR or LF).
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import IO

from suppression.errors import SuppressionError

__all__ = ["BLOCK_BYTES", "ByteBlocks"]

BLOCK_BYTES = 4 << 20
"""Bytes read at a time; a block then holds about 60,000 lead rows."""
_LF = 0x0A
_CR = 0x0D


class ByteBlocks:
    """Reads ``path`` (decompressing ``.gz``) in blocks that end at a line end."""

    def __init__(self, path: Path, error: type[SuppressionError], block_bytes: int = BLOCK_BYTES):
        """Open the file.

        Args:
            path: the input; ``.gz`` (any case) is decompressed as it is read.
            error: the error to raise, so the caller reports it as its own.
            block_bytes: bytes read at a time.

        Raises:
            SuppressionError: of type ``error``: missing, a folder, unreadable.
        """
        self._path = path
        self._error = error
        self._block_bytes = max(1, block_bytes)
        self.block_bytes = self._block_bytes
        """Bytes read at a time."""
        self._leftover = b""
        self._eof = False
        try:
            self._raw: IO[bytes] = path.open("rb")
        except FileNotFoundError:
            raise error(f"cannot read {path}: no such file") from None
        except IsADirectoryError:
            raise error(f"cannot read {path}: it is a directory") from None
        except PermissionError:
            raise error(f"cannot read {path}: permission denied") from None
        except OSError as exc:
            raise error(f"cannot read {path}: {exc}") from None
        self._stream: IO[bytes] = self._raw
        if path.suffix.lower() == ".gz":
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
        self.unpacked = 0
        """Bytes read so far, after decompression."""
        self.size = _size(self._raw)
        """Bytes of the file as stored (compressed, for ``.gz``)."""

    @property
    def position(self) -> int:
        """Bytes of the stored file read so far: progress against :attr:`size`."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def _read(self) -> bytes:
        try:
            data = self._stream.read(self._block_bytes)
            self.unpacked += len(data)
            return data
        except (OSError, EOFError, zlib.error) as exc:
            raise self._error(
                f"cannot read {self._path}: {exc}; check that it is a whole, valid file"
            ) from None

    def next_block(self) -> bytes | None:
        """The next block, ending at a line end (or the file's end); None at the end."""
        data = self._leftover
        while not self._eof:
            more = self._read()
            if not more:
                self._eof = True
                break
            if data and _last_line_end(more):
                # The usual case, a line end in what was just read: the block is copied once
                # (joined straight from the two pieces), not joined and then cut.
                cut = len(data) + _last_line_end(more)
                block = b"".join((data, memoryview(more)[: cut - len(data)]))
                self._leftover = more[cut - len(data) :]
                return block
            data += more
            cut = _last_line_end(data)
            if cut:
                self._leftover = data[cut:]
                return data[:cut]
        self._leftover = b""
        return data or None

    def skip(self, count: int) -> bytes:
        """The first ``count`` bytes (or fewer, at the end), read past without being cut."""
        data = self._leftover
        while len(data) < count and not self._eof:
            more = self._read()
            if not more:
                self._eof = True
            data += more
        self._leftover = data[count:]
        return data[:count]

    def close(self) -> None:
        """Close the file; safe to call twice."""
        self._stream.close()
        self._raw.close()


def _last_line_end(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that ends at a line end; 0 if none is known.

    A CR at the very end may be the first half of CR LF, so it does not count yet.
    """
    at = data.rfind(b"\n")
    if at >= 0:
        return at + 1
    at = data.rfind(b"\r", 0, len(data) - 1)
    return at + 1 if at >= 0 else 0


def _size(stream: IO[bytes]) -> int:
    try:
        return stream.seek(0, io.SEEK_END)
    finally:
        stream.seek(0)
