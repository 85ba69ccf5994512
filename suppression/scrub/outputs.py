"""Writing a scrub's outputs atomically: temporary files beside the targets, renamed at the end.

An interrupted or failed scrub leaves no output that looks complete: each
file is written under a temporary name and renamed over its final name only
once everything is written, and the summary, renamed last, marks a complete
set.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from suppression.scrub.encoding import ERRORS
from suppression.scrub.reading import InputFileError

__all__ = ["OutputKind", "OutputSet", "output_paths"]


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
        final = self._paths[kind]
        temporary = final.with_name(f".{final.name}.{os.getpid()}.partial")
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

    def commit(self) -> dict[OutputKind, Path]:
        """Flush and sync every file, then rename each into place, the summary last."""
        for stream in self._open.values():
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        self._open.clear()
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
