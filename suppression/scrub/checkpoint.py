"""A scrub's checkpoint: how far it got, so ``--resume`` continues after its last chunk.

After each chunk the scrub flushes its temporary outputs and replaces a small
hidden JSON file beside them (``.leads.checkpoint.<pid>.json``) that records
the input's identity, the options that shape the outputs, the data version,
the line to read next, the size of each temporary output and the counts so
far. The numbers already seen (for duplicates and ``--dedupe``) are appended
to a hidden ``.leads.seen.<pid>`` file as raw 64-bit integers, so a checkpoint
costs a few hundred microseconds whatever the file's size.

A resumed scrub takes over the interrupted one's temporary files, cuts them
to the recorded sizes, skips the lines already done and goes on, so its
outputs are the same, byte for byte, as those of a scrub never interrupted.
"""

from __future__ import annotations

import array
import contextlib
import glob
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.scrub.reading import InputFileError

__all__ = ["Checkpoint", "CheckpointFiles", "input_identity"]

logger = logging.getLogger(__name__)

FORMAT = 1
_NEW = ".new"
_HEAD_BYTES = 1 << 16


def input_identity(path: Path) -> dict[str, Any]:
    """What must not change between a scrub and its resumption: size, mtime, first bytes."""
    stat = path.stat()
    with path.open("rb") as stream:
        head = hashlib.sha256(stream.read(_HEAD_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


@dataclass(slots=True)
class Checkpoint:
    """The state of an interrupted scrub after its last complete chunk."""

    pid: int
    """The process whose temporary files hold the outputs so far."""
    input: dict[str, Any]
    options: dict[str, Any]
    versions: dict[str, str]
    next_line: int
    """The first input line of the next chunk."""
    chunks: int
    sizes: dict[str, int]
    """Bytes of each temporary output after the last chunk."""
    seen_bytes: int
    tally: dict[str, Any]
    strings: int = 0
    """Distinct strings submitted so far (the engine's numbering)."""
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT
    holder: int = 0
    """The process whose name the checkpoint file bears (the last to take it over)."""


class CheckpointFiles:
    """The checkpoint and seen-number files of one scrub's outputs (``stem`` in ``folder``)."""

    def __init__(self, folder: Path, stem: str) -> None:
        """Name the files; nothing is written yet."""
        self._folder = folder
        self._stem = stem
        self.pid = os.getpid()
        self._seen_stream: Any = None
        self.saved_line = 0
        """The next line of the last checkpoint saved."""

    def checkpoint_path(self, pid: int) -> Path:
        """The checkpoint of process ``pid``."""
        return self._folder / f".{self._stem}.checkpoint.{pid}.json"

    def seen_path(self, pid: int) -> Path:
        """The seen numbers of process ``pid``."""
        return self._folder / f".{self._stem}.seen.{pid}"

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint of a scrub that no longer runs, or None."""
        found: list[tuple[float, Path]] = []
        prefix = f".{self._stem}.checkpoint."
        for path in self._folder.glob(f"{glob.escape('.' + self._stem)}.checkpoint.*.json"):
            pid_text = path.name[len(prefix) : -len(".json")]
            if pid_text.isdigit() and not _running(int(pid_text)):
                found.append((path.stat().st_mtime, path))
        if not found:
            return None
        _, path = max(found)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            checkpoint = Checkpoint(**data)
            checkpoint.holder = int(path.name[len(prefix) : -len(".json")])
        except (OSError, ValueError, TypeError) as exc:
            raise InputFileError(
                f"checkpoint {path} cannot be read ({exc}); scrub again without --resume"
            ) from None
        if checkpoint.format != FORMAT:
            raise InputFileError(f"checkpoint {path} has another format; scrub without --resume")
        return checkpoint

    def take_over(self, checkpoint: Checkpoint) -> None:
        """Rename the interrupted scrub's checkpoint and seen numbers to this process's names.

        The checkpoint is renamed first, so a scrub killed while taking over
        leaves a checkpoint that the next ``--resume`` finds; the files it
        names may then bear either process's name (see :attr:`Checkpoint.holder`).

        Raises:
            InputFileError: the seen-number file is missing or too short.
        """
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.checkpoint_path(checkpoint.holder), self.checkpoint_path(self.pid))
        mine = self.seen_path(self.pid)
        for pid in (checkpoint.pid, checkpoint.holder):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.seen_path(pid), mine)
        try:
            size = mine.stat().st_size
        except FileNotFoundError:
            raise InputFileError(
                f"{mine.name} of the interrupted scrub is gone; scrub again without --resume"
            ) from None
        if size < checkpoint.seen_bytes:
            raise InputFileError(f"{mine} is shorter than its checkpoint says; scrub again")

    def load_seen(self, checkpoint: Checkpoint) -> BitMap64:
        """The numbers seen before the checkpoint (after :meth:`take_over`), cut to its size."""
        with self.seen_path(self.pid).open("r+b") as stream:
            stream.truncate(checkpoint.seen_bytes)
            values = array.array("Q", stream.read())
        return BitMap64(values)

    def start(self, resumed: Checkpoint | None) -> None:
        """Open the seen-number file for appending (taken over when resuming)."""
        mode = "ab" if resumed is not None else "wb"
        self._seen_stream = self.seen_path(self.pid).open(mode)
        if resumed is not None:
            self.saved_line = resumed.next_line  # interrupted again, it keeps what it took over

    def add_seen(self, values: npt.NDArray[np.uint64]) -> None:
        """Append numbers first seen in the chunk just written."""
        self._seen_stream.write(values.astype("<u8").tobytes())

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint (after the outputs were flushed)."""
        self._seen_stream.flush()
        checkpoint.seen_bytes = self._seen_stream.tell()
        path = self.checkpoint_path(self.pid)
        temporary = path.with_name(path.name + _NEW)
        temporary.write_text(json.dumps(asdict(checkpoint)), encoding="utf-8")
        os.replace(temporary, path)
        self.saved_line = checkpoint.next_line

    @property
    def saved(self) -> bool:
        """True once this scrub has written a checkpoint."""
        return self.saved_line > 0

    def remove(self) -> None:
        """Remove this scrub's files (it completed, or cannot be resumed)."""
        if self._seen_stream is not None:
            self._seen_stream.close()
            self._seen_stream = None
        for path in (self.checkpoint_path(self.pid), self.seen_path(self.pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        """Close the seen-number file, keeping it (the scrub may be resumed)."""
        if self._seen_stream is not None:
            self._seen_stream.close()
            self._seen_stream = None

    def remove_stale(self) -> None:
        """Remove the checkpoints of scrubs that no longer run (a new scrub starts afresh)."""
        stem = glob.escape("." + self._stem)
        for path in self._folder.glob(f"{stem}.checkpoint.*.json"):
            self._remove_if_dead(path, path.name.split(".")[-2])
        self.remove_partial()
        for path in self._folder.glob(f"{stem}.seen.*"):
            self._remove_if_dead(path, path.name.split(".")[-1])

    def remove_partial(self) -> None:
        """Remove the half-written checkpoints (``.new``) of scrubs that no longer run.

        A scrub killed between writing its next checkpoint and renaming it over the
        last one leaves such a file. Nothing reads it; without this, a resumed scrub
        would leave it beside its outputs for good.
        """
        stem = glob.escape("." + self._stem)
        for path in self._folder.glob(f"{stem}.checkpoint.*.json{_NEW}"):
            self._remove_if_dead(path, path.name.removesuffix(_NEW).split(".")[-2])

    @staticmethod
    def _remove_if_dead(path: Path, pid_text: str) -> None:
        if pid_text.isdigit() and not _running(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _running(pid: int) -> bool:
    """True if process ``pid`` runs here (a zombie, killed and not yet reaped, does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True
