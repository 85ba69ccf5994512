"""The answers for a scrub's distinct phone strings, as parallel arrays, and their source."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Answers", "CheckEngine", "Progress", "distinct_strings"]

Progress = Callable[[int], None]
"""Called with how many more distinct strings have been answered."""


@dataclass(slots=True)
class Answers:
    """One entry per distinct phone string, in the order the strings were first seen.

    Both engines fill these, so the rest of a scrub does not care whether the
    answers came from a server or from this process.
    """

    verdicts: npt.NDArray[np.uint8]
    """A :class:`suppression.checker.Verdict` value per string."""
    masks: npt.NDArray[np.uint64]
    """Matched lists per string; bit j is ``list_names[j]``."""
    reasons: npt.NDArray[np.uint8]
    """An :class:`suppression.e164.InvalidReason` value per string; 0 if valid."""
    values: npt.NDArray[np.uint64]
    """The E.164 integer per string; 0 if invalid."""
    list_names: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    """Data version per source: a target ``host:port``, or ``local``; the newest used."""
    first_versions: dict[str, str] = field(default_factory=dict)
    """The version of each source's first answers (a target's data may move during a scrub)."""
    stale: bool = False
    failed_closed: bool = False
    retried_on: dict[str, int] = field(default_factory=dict)
    """Remote: batches a target answered after the stream that first took them failed."""
    failed_targets: dict[str, str] = field(default_factory=dict)
    """Remote: targets that could not answer during the scrub, and why."""
    earliest_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    """Under a policy: per string, when a DEFERRED number may first be dialed (ms); else 0.
    Empty when no answer came from a policy."""
    rules: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    """Under a policy: per string, the rules that decided it; bit j is ``rule_names[j]``."""
    rule_names: tuple[str, ...] = ()
    policy: str = ""
    """The policy the answers were decided under; "" without one."""
    policy_version: str = ""
    """That policy file's version."""

    @classmethod
    def empty(cls, size: int) -> Answers:
        """Arrays of ``size`` zeros, to be filled batch by batch."""
        return cls(
            np.zeros(size, dtype=np.uint8),
            np.zeros(size, dtype=np.uint64),
            np.zeros(size, dtype=np.uint8),
            np.zeros(size, dtype=np.uint64),
        )

    def fill_policy(
        self,
        start: int,
        count: int,
        earliest_ms: object,
        rules: object,
        rule_names: tuple[str, ...],
    ) -> None:
        """Store one batch's policy answers (after :meth:`fill`) for strings ``start`` onwards."""
        if len(self.earliest_ms) != len(self.verdicts):
            self.earliest_ms = np.zeros(len(self.verdicts), dtype=np.int64)
            self.rules = np.zeros(len(self.verdicts), dtype=np.uint64)
        self.earliest_ms[start : start + count] = np.asarray(earliest_ms, dtype=np.int64)
        self.rules[start : start + count] = np.asarray(rules, dtype=np.uint64)
        if rule_names and not self.rule_names:
            self.rule_names = rule_names

    def fill(
        self,
        start: int,
        verdicts: object,
        masks: object,
        reasons: dict[int, int],
        values: object,
    ) -> None:
        """Store one batch's answers for strings ``start`` onwards.

        Args:
            start: index of the batch's first string.
            verdicts: per-string verdicts (any int sequence).
            masks: per-string list bitmasks.
            reasons: batch index -> reason, for invalid strings only.
            values: per-string E.164 integers.
        """
        verdict_array = np.asarray(verdicts, dtype=np.uint8)
        end = start + len(verdict_array)
        self.verdicts[start:end] = verdict_array
        self.masks[start:end] = np.asarray(masks, dtype=np.uint64)
        self.values[start:end] = np.asarray(values, dtype=np.uint64)
        if reasons:
            at = np.fromiter(reasons.keys(), dtype=np.int64, count=len(reasons))
            self.reasons[start + at] = np.fromiter(
                reasons.values(), dtype=np.uint8, count=len(reasons)
            )


class CheckEngine(Protocol):
    """Answers distinct phone strings; the local and the remote engine both fit.

    Strings are numbered from 0 across the whole scrub; a scrub submits a
    chunk's strings, reads on, and takes the chunk's answers later, so the
    engine works while the next chunk is read.
    """

    def submit(self, start: int, texts: list[str]) -> None:
        """Queue strings ``start``, ``start + 1``, ... for checking; may return before they are."""

    def take(self, start: int, count: int) -> Answers:
        """Wait for strings ``start`` to ``start + count - 1`` and return their answers.

        Every earlier string must have been taken; the engine forgets these.
        The answers' versions and failover counts are those of the whole scrub so far.
        """

    def end(self) -> None:
        """Say that the last chunk was taken; :meth:`close` follows."""

    def fixed_versions(self) -> dict[str, str] | None:
        """The data version every answer will carry, if it cannot move (local data); else None."""

    def close(self) -> None:
        """Release processes, threads and connections; safe to call twice."""


def distinct_strings(phones: list[str]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Per row, the index of its phone string among the chunk's distinct ones (-1 for "").

    Returns:
        Those indexes, and the distinct strings in order of first sight.
    """
    # Each distinct string gets an id from a counter, so one C-level map call finds or
    # assigns ids (duplicates skip counter values; the order of first sight is restored
    # below). Id 0 is "", the phone of every row with a problem: never checked.
    index: dict[str, int] = {"": 0}
    found = list(map(index.setdefault, phones, itertools.count(1)))
    fresh = list(itertools.islice(index.keys(), 1, None))
    first_seen = np.fromiter(index.values(), dtype=np.int64, count=len(index))
    uids = np.searchsorted(first_seen, np.array(found, dtype=np.int64)) - 1
    return uids, fresh
