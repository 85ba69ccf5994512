"""Writing a scrub's outputs atomically: temporary files beside the targets, renamed at the end.

An interrupted or failed scrub leaves no output that looks complete: each
file is written under a temporary name and renamed over its final name only
once everything is written, and the summary, renamed last, marks a complete
set. A killed scrub cannot remove its temporary files; the next scrub to the
same outputs removes them.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import enum
import glob
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from suppression.scrub.encoding import ERRORS
from suppression.scrub.reading import InputFileError

__all__ = ["OutputKind", "OutputSet", "OutputStream", "ROW_OUTPUTS", "output_paths"]

logger = logging.getLogger(__name__)

_PARTIAL = ".partial"


class OutputKind(enum.StrEnum):
    """The files a scrub writes; the value is the name's middle part."""

    CLEAN = "clean"
    SUPPRESSED = "suppressed"
    INVALID = "invalid"
    DEFERRED = "deferred"
    """Under a pre-dial policy: rows not to dial yet, with their earliest dial time."""
    SUMMARY_TEXT = "summary.txt"
    SUMMARY_JSON = "summary.json"
    """Renamed last: its presence means the whole set is complete."""


ROW_OUTPUTS = (OutputKind.CLEAN, OutputKind.SUPPRESSED, OutputKind.INVALID, OutputKind.DEFERRED)
"""The files that hold rows; a new verdict adds its file here. The deferred file is
written only by a scrub that decides under a policy (or gets a deferred answer)."""
_GZIP_LEVEL = 6
_GZIP_WBITS = 31
"""zlib's wbits for a gzip header and trailer."""


class OutputStream:
    """One output file: text in the input's encoding, optionally as gzip members.

    :meth:`mark` makes what was written so far a whole file prefix (it ends
    the current gzip member; a file of several members is a valid gzip file)
    and returns its size, so a resumed scrub can cut the file there and go on.
    """

    def __init__(self, path: Path, encoding: str, compress: bool, resume_at: int | None) -> None:
        """Open ``path``, new or (for a resumed scrub) cut to ``resume_at`` bytes."""
        if resume_at is None:
            self._file: IO[bytes] = path.open("wb")
        else:
            self._file = path.open("r+b")
            self._file.truncate(resume_at)
            self._file.seek(resume_at)
        self._encode = codecs.getincrementalencoder(encoding)(errors=ERRORS).encode
        if resume_at:
            self._encode("")  # a BOM was written by the first run
        self._compress = compress
        self._compressor = self._new_compressor()
        self._dirty = False

    def _new_compressor(self) -> Any:
        return zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS) if self._compress else None

    def write(self, text: str) -> int:
        """Write ``text``, encoded (and compressed)."""
        data = self._encode(text)
        if self._compressor is not None:
            data = self._compressor.compress(data)
            self._dirty = True
        self._file.write(data)
        return len(text)

    def write_bytes(self, data: bytes | memoryview) -> None:
        """Write bytes already in the output's encoding (rows copied from the input)."""
        if self._compressor is not None:
            data = self._compressor.compress(data)
            self._dirty = True
        self._file.write(data)

    def writelines(self, texts: Iterable[str]) -> None:
        """Write each text, in order."""
        self.write("".join(texts))

    def mark(self) -> int:
        """End the gzip member, flush to the operating system, and return the size."""
        if self._compressor is not None and self._dirty:
            self._file.write(self._compressor.flush())
            self._compressor = self._new_compressor()
            self._dirty = False
        self._file.flush()
        return self._file.tell()

    def fileno(self) -> int:
        """The file descriptor, for fsync."""
        return self._file.fileno()

    def close(self) -> None:
        """Finish the file and close it."""
        if not self._file.closed:
            self.mark()
            self._file.close()


def _stem_and_extension(source: Path) -> tuple[str, str]:
    name = source.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return name, ".csv"
    return stem, "." + extension


def output_paths(
    source: Path, directory: Path | None = None, compress: bool = False
) -> dict[OutputKind, Path]:
    """Where each output of scrubbing ``source`` goes.

    ``leads.csv.gz`` gives ``leads.clean.csv``, ``leads.suppressed.csv``,
    ``leads.invalid.csv``, ``leads.deferred.csv`` (under a policy),
    ``leads.summary.txt`` and ``leads.summary.json``, beside the input unless
    ``directory`` is given; with ``compress``, the row files end in ``.gz``.
    """
    if compress:
        extension_suffix = ".gz"
    else:
        extension_suffix = ""
    stem, extension = _stem_and_extension(source)
    folder = directory if directory is not None else source.parent
    paths: dict[OutputKind, Path] = {}
    for kind in OutputKind:
        if kind in (OutputKind.SUMMARY_TEXT, OutputKind.SUMMARY_JSON):
            paths[kind] = folder / f"{stem}.{kind.value}"
        else:
            paths[kind] = folder / f"{stem}.{kind.value}{extension}{extension_suffix}"
    return paths


class OutputSet:
    """The temporary files of one scrub; :meth:`commit` renames them into place.

    Use as a context manager: leaving the block without a commit (an error,
    Ctrl-C) removes every temporary file and touches no existing output.
    """

    def __init__(
        self,
        paths: dict[OutputKind, Path],
        encoding: str,
        *,
        compress: bool = False,
        adopt: Mapping[OutputKind, tuple[tuple[int, ...], int]] | None = None,
    ) -> None:
        """Prepare the set.

        Args:
            paths: final path per output.
            encoding: text encoding of every output (the input's).
            compress: write the row files as gzip.
            adopt: resuming: per output, the pids of the interrupted scrubs whose
                temporary file to take over (the first found), and the size to cut it to.

        Raises:
            InputFileError: the output folder does not exist or is not writable,
                or a temporary file to adopt is missing or too short.
        """
        self._paths = paths
        self._encoding = encoding
        self._compress = compress
        self._temporary: dict[OutputKind, Path] = {}
        self._open: dict[OutputKind, OutputStream] = {}
        self._resume_at: dict[OutputKind, int] = {}
        self._kept = False
        folder = next(iter(paths.values())).parent
        if not folder.is_dir():
            raise InputFileError(f"output folder {folder} does not exist; create it first")
        if not os.access(folder, os.W_OK):
            raise InputFileError(f"cannot write to output folder {folder}: permission denied")
        for kind, (pids, size) in (adopt or {}).items():
            self._adopt(kind, pids, size)
        removed = self._remove_stale()
        if removed:
            logger.info("removed %d temporary file(s) left by a killed scrub", removed)

    def _adopt(self, kind: OutputKind, pids: tuple[int, ...], size: int) -> None:
        mine = self._temporary_name(kind, os.getpid())
        for pid in pids:
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._temporary_name(kind, pid), mine)
        try:
            found = mine.stat().st_size
        except FileNotFoundError:
            raise InputFileError(
                f"the temporary {kind.value} file of the interrupted scrub is gone; "
                "scrub again without --resume"
            ) from None
        if found < size:
            raise InputFileError(
                f"{mine} is shorter than its checkpoint says; scrub again without --resume"
            )
        self._temporary[kind] = mine
        self._resume_at[kind] = size

    def _temporary_name(self, kind: OutputKind, pid: int) -> Path:
        final = self._paths[kind]
        return final.with_name(f".{final.name}.{pid}{_PARTIAL}")

    def _remove_stale(self) -> int:
        """Remove the temporary files of earlier scrubs to these outputs that no longer run.

        A scrub that was killed (SIGKILL, a crash, a power cut) leaves its
        hidden ``.NAME.PID.partial`` files. Those of a process that still runs on
        this machine are left alone: it may be a scrub of the same file.
        """
        removed = 0
        for kind, final in self._paths.items():
            prefix = f".{final.name}."
            for path in final.parent.glob(f"{glob.escape(prefix)}*{_PARTIAL}"):
                pid_text = path.name[len(prefix) : -len(_PARTIAL)]
                if not pid_text.isdigit() or path != self._temporary_name(kind, int(pid_text)):
                    continue
                if _running(int(pid_text)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def open(self, kind: OutputKind) -> OutputStream:
        """Open the temporary file for ``kind``, in the input's encoding.

        A file adopted from an interrupted scrub is opened where its checkpoint left it.
        """
        temporary = self._temporary_name(kind, os.getpid())
        self._temporary[kind] = temporary
        encoding = self._encoding
        compress = self._compress
        if kind in (OutputKind.SUMMARY_TEXT, OutputKind.SUMMARY_JSON):
            encoding, compress = "utf-8", False
        stream = OutputStream(temporary, encoding, compress, self._resume_at.pop(kind, None))
        self._open[kind] = stream
        return stream

    def restart(self) -> None:
        """Write the adopted files from their start after all (the resume is refused)."""
        self._resume_at.clear()

    def written(self, kind: OutputKind) -> bool:
        """True if ``kind`` was opened (or adopted): it will be committed."""
        return kind in self._temporary or kind in self._resume_at

    def resumed(self, kind: OutputKind) -> bool:
        """True if ``kind`` continues a file adopted from an interrupted scrub (not yet opened)."""
        return kind in self._resume_at

    def mark(self) -> dict[OutputKind, int]:
        """Flush every open file to a whole prefix; their sizes, for a checkpoint."""
        return {kind: stream.mark() for kind, stream in self._open.items()}

    def keep(self) -> None:
        """Leave the temporary files where they are (for ``--resume``), closed."""
        for stream in self._open.values():
            stream.close()
        self._open.clear()
        self._temporary.clear()
        self._kept = True

    def writer(self, kind: OutputKind, delimiter: str, line_terminator: str) -> Any:
        """Open the temporary file for ``kind`` and return a csv writer over it."""
        return csv.writer(self.open(kind), delimiter=delimiter, lineterminator=line_terminator)

    def stream(self, kind: OutputKind) -> OutputStream:
        """The open temporary file for ``kind``."""
        return self._open[kind]

    def sync(self) -> None:
        """Flush every file to the disk and close it; the slow part of :meth:`commit`."""
        for stream in self._open.values():
            stream.mark()
            os.fsync(stream.fileno())
            stream.close()
        self._open.clear()

    def commit(self) -> dict[OutputKind, Path]:
        """Sync the files, then rename each into place, the summary last."""
        self.sync()
        # An old summary beside new data files would vouch for a set it did not describe.
        with contextlib.suppress(FileNotFoundError):
            self._paths[OutputKind.SUMMARY_JSON].unlink()
        if OutputKind.DEFERRED not in self._temporary:
            # A deferred file of an earlier scrub under a policy belongs to another set.
            with contextlib.suppress(FileNotFoundError):
                self._paths[OutputKind.DEFERRED].unlink()
        for kind in OutputKind:  # declaration order: SUMMARY_JSON is renamed last
            if kind in self._temporary:
                os.replace(self._temporary.pop(kind), self._paths[kind])
        return dict(self._paths)

    def discard(self) -> None:
        """Remove every temporary file not yet committed."""
        for stream in self._open.values():
            stream.close()
        self._open.clear()
        for temporary in self._temporary.values():
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        self._temporary.clear()


def _running(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (ours or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
