"""The policies a process serves, and their dated lists: replaced on reload only when all good.

A reload that fails (a file is gone, does not parse or breaks a rule) keeps
what was running and says why; requests never see half a reload, because the
policies and the dated lists are swapped as one reference.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from suppression.errors import ConfigError
from suppression.policy.dated import DatedList
from suppression.policy.datedfile import load_dated_file, parse_dated_spec
from suppression.policy.model import PolicySet
from suppression.policy.parse import load_policy_file

__all__ = ["PolicyStore", "Reload", "Served", "open_store"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Served:
    """What a request is decided with: the policies and the dated lists, from one load."""

    policies: PolicySet
    dated: Mapping[str, DatedList] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did."""

    ok: bool
    version: str
    """The version now serving (the old one when the reload failed)."""
    message: str


class PolicyStore:
    """The current policies of a policy file, and the dated list files beside it. Thread-safe."""

    def __init__(
        self, path: Path, dated_files: Mapping[str, Path] | None = None, region: str = ""
    ) -> None:
        """Load the files.

        Args:
            path: the policy file.
            dated_files: dated lists by name (``--dated-list NAME=FILE``), CSV of number,date.
            region: the default region of national numbers in the dated files.

        Raises:
            PolicyError: the policy file cannot be read, does not parse or breaks a rule.
            ConfigError: a dated list file cannot be read or has a bad row.
        """
        self._path = path
        self._dated_files = dict(dated_files or {})
        self._region = region
        self._served = self._load()
        self._lock = threading.Lock()
        self.reloads_failed = 0
        """Reloads refused since start, for status and tests."""

    def _load(self) -> Served:
        policies = load_policy_file(self._path)
        dated = {
            name: load_dated_file(file, self._region) for name, file in self._dated_files.items()
        }
        return Served(policies, dated)

    @property
    def path(self) -> Path:
        """The policy file."""
        return self._path

    @property
    def served(self) -> Served:
        """The policies and dated lists to answer with; read once per request."""
        return self._served

    @property
    def current(self) -> PolicySet:
        """The policies being served."""
        return self._served.policies

    def reload(self) -> Reload:
        """Read every file again; keep what is running if any is bad."""
        with self._lock:
            old = self._served.policies
            try:
                new = self._load()
            except ConfigError as exc:  # PolicyError is a ConfigError
                self.reloads_failed += 1
                message = f"policy reload refused, still serving version {old.version}: {exc}"
                logger.error("%s", message)
                return Reload(False, old.version, message)
            self._served = new
            lists = f"; dated lists {', '.join(sorted(new.dated))}" if new.dated else ""
            message = (
                f"policies reloaded from {self._path}: version {old.version} -> "
                f"{new.policies.version} ({', '.join(sorted(new.policies.policies))}; default "
                f"{new.policies.default}{lists})"
            )
            logger.info("%s", message)
            return Reload(True, new.policies.version, message)


def open_store(
    policy_file: Path | None, dated_specs: tuple[str, ...] = (), region: str = ""
) -> PolicyStore | None:
    """The store of ``--policy-file`` and ``--dated-list``; None without a policy file.

    Raises:
        ConfigError: dated lists without a policy file, a list named twice, or a bad file.
    """
    if policy_file is None:
        if dated_specs:
            raise ConfigError("--dated-list is read by the policies: give --policy-file too")
        return None
    files: dict[str, Path] = {}
    for spec in dated_specs:
        name, path = parse_dated_spec(spec)
        if name in files:
            raise ConfigError(f"--dated-list names {name!r} twice")
        files[name] = path
    return PolicyStore(policy_file, files, region)
