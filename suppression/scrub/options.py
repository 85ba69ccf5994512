"""What one scrub needs to know: the options of ``suppression scrub``, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScrubOptions"]


@dataclass(frozen=True, slots=True)
class ScrubOptions:
    """A scrub's options; the command builds them from its flags and environment.

    The defaults are the command's. Local mode (no ``targets``) reads
    ``data_dir`` and/or ``list_files``.
    """

    region: str = ""
    """Default region (ISO code such as US, CN) for national number forms; "" means none."""
    column: str = ""
    """The phone column: a header name or a 1-based position; "" detects it."""
    encoding: str = ""
    """The lead file's codec; "" detects UTF-8 (with or without a BOM) or GB18030."""
    delimiter: str = ""
    """One character or ``tab``; "" detects it from the file name and the header."""
    output_dir: Path | None = None
    """Where the outputs go; None means beside the input."""
    lists: tuple[str, ...] = ()
    """Lists to check; empty means the data's default lists."""
    targets: tuple[str, ...] = ()
    """Servers to ask (``host:port``); empty means check in this process."""
    timeout: float = 10.0
    """Seconds a server may take to answer one batch."""
    batch_size: int = 10_000
    """Numbers per batch, for a server's CheckStream or a local worker."""
    processes: int = 0
    """Worker processes; 0 means one per core, 1 means none."""
    parse_cache_size: int = 200_000
    """Loose-format parse results kept per process (LRU)."""
    data_dir: Path | None = None
    """Local mode: a directory of snapshot files; the newest is loaded."""
    list_files: tuple[str, ...] = ()
    """Local mode: number files as lists, ``NAME=FILE`` or ``NAME:KIND=FILE``."""
    snapshot_key_file: Path | None = None
    """Local mode: the key that must have signed the snapshot (see --snapshot-key-file)."""
    chunk_rows: int = 100_000
    """Input lines read, checked and written at a time; memory grows with it."""
    resume: bool = False
    """Continue an interrupted scrub of the same file from its last checkpoint."""
    as_of: str = ""
    """Local mode: scrub against the lists as of this version or time ("" means now)."""
    archive_dir: Path | None = None
    """With ``as_of``: the change archive; None means ``archive/`` in ``data_dir``."""
    no_header: bool = False
    """The file has no header row; ``column`` is then a 1-based position (or detected)."""
    compress: bool = False
    """Write the row files gzip-compressed (``.gz``)."""
    dedupe: bool = False
    """Write each distinct number once: later rows with the same number are left out."""
    policy_file: Path | None = None
    """Local mode: decide every row under this pre-dial policy file (docs/policy.md)."""
    dated_lists: tuple[str, ...] = ()
    """Local mode, with ``policy_file``: dated lists ``NAME=FILE`` the policies read."""
    policy: str = ""
    """The policy to decide under ("" means the default one); remote mode sends it."""
    decide_at: str = ""
    """The moment every row is decided for (ISO 8601 with an offset); "" means the start."""

    @property
    def under_policy(self) -> bool:
        """Whether the scrub decides under a pre-dial policy (and writes a deferred file)."""
        return self.policy_file is not None or bool(self.policy or self.decide_at)
