"""The secret key that signs snapshots (HMAC-SHA256): read from a file, checked, never shown.

A key file holds one key per line; blank lines and surrounding whitespace are
ignored. The first key signs what this process writes; every key verifies what
it reads, so that a key can be rotated without a stop (docs/operations.md).
See docs/snapshot-format.md for where the signature goes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from suppression.errors import ConfigError

__all__ = ["MIN_KEY_LENGTH", "SIGNATURE_SIZE", "SnapshotKey"]

logger = logging.getLogger(__name__)

MIN_KEY_LENGTH = 32
"""Fewest bytes a key may have: `openssl rand -hex 32` gives 64."""
SIGNATURE_SIZE = 32
"""Bytes of an HMAC-SHA256 tag."""
_KEY_ID_LABEL = b"suppression snapshot key id\x00"


@dataclass(frozen=True, slots=True)
class SnapshotKey:
    """Keys that sign and verify snapshots; the first signs, any verifies.

    The key bytes never appear in ``repr`` or in messages: only their key ids,
    a short one-way fingerprint that tells which key signed a file.
    """

    keys: tuple[bytes, ...] = field(repr=False)
    """The keys, the signing one first."""
    source: str = ""
    """Where the keys came from, for messages (a path)."""

    def __post_init__(self) -> None:
        """Refuse no key, or a key too short to resist guessing.

        Raises:
            ConfigError: saying which key is wrong and how to make a good one.
        """
        where = self.source or "the snapshot key"
        if not self.keys:
            raise ConfigError(
                f"{where} holds no key; write one into it, e.g. `openssl rand -hex 32 > FILE`"
            )
        for number, key in enumerate(self.keys, 1):
            if len(key) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"{where}: key on line {number} has {len(key)} bytes, fewer than "
                    f"{MIN_KEY_LENGTH}; make one with `openssl rand -hex 32`"
                )

    @classmethod
    def from_file(cls, path: Path) -> SnapshotKey:
        """Read the keys in ``path``, one per line.

        A file that others (not the owner or group) may read is refused: anyone
        who can read the key can sign a crafted snapshot. A file its group may
        read is accepted, with a warning unless that group is this process's own
        (Kubernetes' ``fsGroup`` makes a mounted Secret readable by the pod's group).

        Raises:
            ConfigError: the file cannot be read, is readable by others, or
                holds no key or a key that is too short.
        """
        try:
            status = path.stat()
            mode = status.st_mode
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"--snapshot-key-file {path}: cannot read it ({exc.strerror}); check the path "
                "and that this user may read it"
            ) from None
        if mode & stat.S_IROTH:
            raise ConfigError(
                f"--snapshot-key-file {path} is readable by every user (mode "
                f"{stat.S_IMODE(mode):04o}): run `chmod 600 {path}` (in Kubernetes, mount the "
                "Secret with defaultMode 0400, or 0440 with fsGroup)"
            )
        if mode & stat.S_IRGRP and status.st_gid != os.getegid():
            logger.warning(
                "--snapshot-key-file %s is readable by its group (mode %04o); "
                "make it 0600 or 0400 unless the group is this service alone",
                path,
                stat.S_IMODE(mode),
            )
        keys = tuple(line.strip() for line in text.splitlines() if line.strip())
        return cls(keys, source=f"--snapshot-key-file {path}")

    @property
    def key_id(self) -> str:
        """The signing key's id."""
        return key_id(self.keys[0])

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key, the signing one first."""
        return tuple(key_id(key) for key in self.keys)

    def signer(self) -> hmac.HMAC:
        """A fresh HMAC-SHA256 with the signing key; feed it, then take ``digest()``."""
        return hmac.new(self.keys[0], digestmod=hashlib.sha256)

    def verifies(self, chunks: Iterable[bytes | memoryview], signature: bytes) -> bool:
        """Whether ``signature`` is the HMAC of ``chunks`` under any of the keys."""
        macs = [hmac.new(key, digestmod=hashlib.sha256) for key in self.keys]
        for chunk in chunks:
            for mac in macs:
                mac.update(chunk)
        # Every key is tried, not only until the first match: no timing tells which one matched.
        matches = [hmac.compare_digest(mac.digest(), signature) for mac in macs]
        return any(matches)


def key_id(key: bytes) -> str:
    """A short fingerprint of ``key`` that does not reveal it: 16 letters ``a`` to ``p``.

    Letters, not hex digits: the log filter masks runs of digits as phone numbers.
    """
    digest = hashlib.sha256(_KEY_ID_LABEL + key).digest()[:8]
    return "".join(_ID_LETTERS[byte >> 4] + _ID_LETTERS[byte & 15] for byte in digest)


_ID_LETTERS = "abcdefghijklmnop"
