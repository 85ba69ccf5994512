"""Writing a scrub's outputs atomically: temporary files beside the targets, renamed at the end.

An interrupted or failed scrub leaves no output that looks complete: each
file is written under a temporary name and renamed over its final name only
once everything is written, and the summary, renamed last, marks a complete
set. A killed scrub cannot remove its temporary files; the next scrub to the
same outputs removes them.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import glob
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from suppression.scrub.encoding import ERRORS
from suppression.scrub.reading import InputFileError

__all__ = ["OutputKind", "OutputSet", "output_paths"]

logger = logging.getLogger(__name__)

_PARTIAL = ".partial"


class OutputKind(enum.StrEnum):
    """The files a scrub writes; the value is the name's middle part."""

    CLEAN = "clean"
    SUPPRESSED = "suppressed"
    INVALID = "invalid"
    SUMMARY_TEXT = "summary.txt"
    SUMMARY_JSON = "summary.json"
    """Renamed last: its presence means the whole set is complete."""


def _stem_and_extension(source: Path) -> tuple[str, str]:
    name = source.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return name, ".csv"
    return stem, "." + extension


def output_paths(source: Path, directory: Path | None = None) -> dict[OutputKind, Path]:
    """Where each output of scrubbing ``source`` goes.

    ``leads.csv.gz`` gives ``leads.clean.csv``, ``leads.suppressed.csv``,
    ``leads.invalid.csv``, ``leads.summary.txt`` and ``leads.summary.json``,
    beside the input unless ``directory`` is given.
    """
    stem, extension = _stem_and_extension(source)
    folder = directory if directory is not None else source.parent
    paths: dict[OutputKind, Path] = {}
    for kind in OutputKind:
        if kind in (OutputKind.SUMMARY_TEXT, OutputKind.SUMMARY_JSON):
            paths[kind] = folder / f"{stem}.{kind.value}"
        else:
            paths[kind] = folder / f"{stem}.{kind.value}{extension}"
    return paths


class OutputSet:
    """The temporary files of one scrub; :meth:`commit` renames them into place.

    Use as a context manager: leaving the block without a commit (an error,
    Ctrl-C) removes every temporary file and touches no existing output.
    """

    def __init__(self, paths: dict[OutputKind, Path], encoding: str) -> None:
        """Prepare the set.

        Args:
            paths: final path per output.
            encoding: text encoding of every output (the input's).

        Raises:
            InputFileError: the output folder does not exist or is not writable.
        """
        self._paths = paths
        self._encoding = encoding
        self._temporary: dict[OutputKind, Path] = {}
        self._open: dict[OutputKind, IO[str]] = {}
        folder = next(iter(paths.values())).parent
        if not folder.is_dir():
            raise InputFileError(f"output folder {folder} does not exist; create it first")
        if not os.access(folder, os.W_OK):
            raise InputFileError(f"cannot write to output folder {folder}: permission denied")
        removed = self._remove_stale()
        if removed:
            logger.info("removed %d temporary file(s) left by a killed scrub", removed)

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

    def open(self, kind: OutputKind) -> IO[str]:
        """Open the temporary file for ``kind``, in the input's encoding."""
        temporary = self._temporary_name(kind, os.getpid())
        self._temporary[kind] = temporary
        encoding = self._encoding
        if kind in (OutputKind.SUMMARY_TEXT, OutputKind.SUMMARY_JSON):
            encoding = "utf-8"
        stream = temporary.open("w", encoding=encoding, errors=ERRORS, newline="")
        self._open[kind] = stream
        return stream

    def writer(self, kind: OutputKind, delimiter: str, line_terminator: str) -> Any:
        """Open the temporary file for ``kind`` and return a csv writer over it."""
        return csv.writer(self.open(kind), delimiter=delimiter, lineterminator=line_terminator)

    def stream(self, kind: OutputKind) -> IO[str]:
        """The open temporary file for ``kind``."""
        return self._open[kind]

    def sync(self) -> None:
        """Flush every file to the disk and close it; the slow part of :meth:`commit`."""
        for stream in self._open.values():
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        self._open.clear()

    def commit(self) -> dict[OutputKind, Path]:
        """Sync the files, then rename each into place, the summary last."""
        self.sync()
        # An old summary beside new data files would vouch for a set it did not describe.
        with contextlib.suppress(FileNotFoundError):
            self._paths[OutputKind.SUMMARY_JSON].unlink()
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
