"""The policies a process serves: loaded at start, replaced on reload only by a good file.

A reload that fails (the file is gone, does not parse, or breaks a rule)
keeps the policies that were running and says why; requests never see a
half-loaded file, because the whole :class:`PolicySet` is swapped as one
reference.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from suppression.errors import PolicyError
from suppression.policy.model import PolicySet
from suppression.policy.parse import load_policy_file

__all__ = ["PolicyStore", "Reload"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did."""

    ok: bool
    version: str
    """The version now serving (the old one when the reload failed)."""
    message: str


class PolicyStore:
    """The current :class:`PolicySet` of a policy file. Thread-safe."""

    def __init__(self, path: Path) -> None:
        """Load the file.

        Raises:
            PolicyError: the file cannot be read, does not parse or breaks a rule.
        """
        self._path = path
        self._current = load_policy_file(path)
        self._lock = threading.Lock()
        self.reloads_failed = 0
        """Reloads refused since start, for status and tests."""

    @property
    def path(self) -> Path:
        """The policy file."""
        return self._path

    @property
    def current(self) -> PolicySet:
        """The policies to answer with; read once per request."""
        return self._current

    def reload(self) -> Reload:
        """Read the file again; keep the running policies if it is bad."""
        with self._lock:
            old = self._current
            try:
                new = load_policy_file(self._path)
            except PolicyError as exc:
                self.reloads_failed += 1
                message = f"policy reload refused, still serving version {old.version}: {exc}"
                logger.error("%s", message)
                return Reload(False, old.version, message)
            self._current = new
            message = (
                f"policies reloaded from {self._path}: version {old.version} -> {new.version} "
                f"({', '.join(sorted(new.policies))}; default {new.default})"
            )
            logger.info("%s", message)
            return Reload(True, new.version, message)
