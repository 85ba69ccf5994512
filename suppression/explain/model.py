"""Explain: for one number and one point in time, what every list said, since when, and why.

Built from the change archive only: the newest base (checkpoint) at or
before the point, the number's own changes after it, and its history before.
An answer never names another number: a change that touched many numbers is
described by its provenance and how many numbers it carried, a block by its
size. A point the archive cannot answer for raises ArchiveCoverageError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from suppression.archive import ArchivedChange, ArchiveReader, Base, SegmentRef
from suppression.archive.index import sha256_of
from suppression.entries import strictest
from suppression.errors import ArchiveError
from suppression.lists import ListKind, Op, Version
from suppression.snapshot import read_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = [
    "DECIDED_UNDER_TODAYS_POLICY",
    "POLICY_NOTE",
    "PolicyExplanation",
    "ChangeRecord",
    "Explanation",
    "ListAnswer",
    "explain",
    "version_at_time",
]

POLICY_NOTE = (
    "list membership: SUPPRESSED when the number was on any of the lists shown; the pre-dial "
    "policy's verdict (exemptions, calling windows, caps) is given apart, under 'policy', "
    "where the policies are loaded (a server's --policy-file, or --policy-file here)"
)
DECIDED_UNDER_TODAYS_POLICY = (
    "decided under the policy file and dated lists loaded now (policy version {version}): the "
    "archive keeps every list change but not earlier policy files; attempt caps count the "
    "attempts archived after the checkpoint this answer was rebuilt from"
)
_ADDS = (Op.ADD, Op.ADD_RANGE)
_KINDS = frozenset(kind.value for kind in ListKind)
_LAST_SEQ = 2**64 - 1


def version_at_time(ms: int) -> Version:
    """The point "at this millisecond": every change of that millisecond included."""
    return Version(ms, _LAST_SEQ)


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One change as Explain shows it: provenance, never other numbers."""

    version: str
    op: str
    list_name: str
    source: str
    actor: str
    evidence: str
    timestamp_ms: int
    producer: str
    numbers_in_change: int
    """How many numbers the change carried (a block: its size)."""
    block: bool

    @classmethod
    def of(cls, change: ArchivedChange) -> ChangeRecord:
        """Describe an archived change."""
        entry = change.entry()
        return cls(
            str(change.version),
            str(entry.op),
            entry.list_name,
            entry.source,
            entry.actor,
            entry.evidence,
            entry.timestamp_ms,
            entry.producer,
            entry.count,
            entry.op in (Op.ADD_RANGE, Op.REMOVE_RANGE),
        )


@dataclass(frozen=True, slots=True)
class ListAnswer:
    """One list at the point asked."""

    name: str
    kind: str
    on_list: bool
    since: ChangeRecord | None
    """The change that put the number in this state, if the archive holds it."""
    since_note: str
    """How the state is known, in words."""
    history: tuple[ChangeRecord, ...]
    """Every archived change of this number on this list up to the point, oldest first."""


@dataclass(frozen=True, slots=True)
class PolicyExplanation:
    """What the pre-dial policy decided for the number at the explained point in time."""

    policy: str
    policy_version: str
    verdict: str
    """ALLOWED, SUPPRESSED, DEFERRED or INVALID."""
    rules: tuple[str, ...]
    """The rules that decided a verdict other than ALLOWED (lists, window, caps, ...)."""
    exemptions: tuple[str, ...]
    """The exemptions that lifted a list for the number."""
    earliest_ms: int
    """For DEFERRED, the first moment the number could have been dialed; 0 otherwise."""
    decided_at_ms: int
    """The moment decided for: the explained time, or the version's time."""
    note: str
    """What the decision could not know (the policy file of that day)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer: per list, the verdict, and where it came from."""

    number: int
    at: Version
    at_time_ms: int | None
    verdict: str
    verdict_basis: str
    lists: tuple[ListAnswer, ...]
    base: Base
    archive_begins: Version | None
    archive_ends: Version | None
    segments: tuple[SegmentRef, ...]
    damage: tuple[str, ...] = field(default_factory=tuple)
    policy: PolicyExplanation | None = None
    """The policy's verdict then, where the replica serves policies."""

    @property
    def suppressed(self) -> bool:
        """Whether any list held the number."""
        return self.verdict == "SUPPRESSED"


def explain(
    reader: ArchiveReader,
    number: int,
    at: Version,
    *,
    key: SnapshotKey | None = None,
    known_until: Version | None = None,
    at_time_ms: int | None = None,
    visible: Callable[[str], bool] | None = None,
) -> Explanation:
    """Explain ``number`` at ``at`` from the archive.

    Args:
        reader: the archive.
        number: an E.164 integer.
        at: the version asked about (see :func:`version_at_time` for a time).
        key: checkpoints must be signed with it, if given.
        known_until: no change exists after the archive's end up to this
            version (the caller is a fresh replica that archives).
        at_time_ms: the time asked about, when the question was a time.
        visible: only lists this accepts are shown (a tenant's lists).

    Raises:
        ArchiveCoverageError: the archive cannot answer for ``at``.
        ArchiveError: a checkpoint is missing or does not match its checksum.
    """
    base, catalog = reader.base_for(at, known_until)
    members, kinds = _base_state(reader, base, number, key)
    history, segments = reader.changes(None, at, number)
    for summary in catalog.segments:
        for name, (created, kind) in summary.created.items():
            if base.version < created <= at and name not in kinds:
                # Created by other numbers' changes: this number's own history decides the rest.
                kinds[name] = ListKind(kind) if kind in _KINDS else ListKind.OPT_OUT
    by_list: dict[str, list[ArchivedChange]] = {}
    for change in history:
        by_list.setdefault(change.fields.get("list", ""), []).append(change)
    answers = []
    for name in sorted(set(kinds) | set(by_list)):
        if visible is not None and not visible(name):
            continue
        answer = _answer(name, base, members, kinds.get(name), by_list.get(name, []))
        if answer is not None:
            answers.append(answer)
    on_any = any(answer.on_list for answer in answers)
    return Explanation(
        number=number,
        at=at,
        at_time_ms=at_time_ms,
        verdict="SUPPRESSED" if on_any else "ALLOWED",
        verdict_basis=POLICY_NOTE,
        lists=tuple(answers),
        base=base,
        archive_begins=catalog.begins,
        archive_ends=catalog.end,
        segments=tuple(segments),
        damage=catalog.damage,
    )


def _base_state(
    reader: ArchiveReader, base: Base, number: int, key: SnapshotKey | None
) -> tuple[set[str], dict[str, ListKind]]:
    """The lists holding ``number`` in the base, and every list's kind there."""
    path = reader.checkpoint_path(base)
    if path is None:
        return set(), {}
    if not path.is_file():
        raise ArchiveError(
            f"checkpoint {path} that base {base.version} names is missing: restore it from a "
            "backup of the archive"
        )
    digest = sha256_of(path, path.stat().st_size)
    if digest != base.sha256:
        raise ArchiveError(
            f"checkpoint {path} does not match the SHA-256 its base recorded ({digest[:12]}... "
            f"against {base.sha256[:12]}...): it was changed after it was archived"
        )
    snapshot = read_snapshot(path, key)
    members = {name for name, bitmap in snapshot.bitmaps.items() if number in bitmap}
    kinds = {name: info.kind for name, info in snapshot.infos.items()}
    return members, kinds


def _answer(
    name: str,
    base: Base,
    members: set[str],
    kind: ListKind | None,
    changes: Sequence[ArchivedChange],
) -> ListAnswer | None:
    """The list at the point, replaying the number's changes after the base; None if no list."""
    on = name in members
    since: ArchivedChange | None = None
    for change in changes:
        if change.version <= base.version:
            continue
        entry = change.entry()
        adds = entry.op in _ADDS
        if kind is None and not adds:
            continue  # a removal from a list that does not exist changes nothing
        kind = strictest(kind, entry.kind)  # as the follower does: only ever stricter
        if adds != on:
            since = change
        on = adds
    if kind is None:
        return None
    if since is not None:
        note = f"{'on' if on else 'off'} the list since change {since.version}"
    else:
        since, note = _state_before_base(
            on, base, [c for c in changes if c.version <= base.version]
        )
    return ListAnswer(
        name=name,
        kind=str(kind),
        on_list=on,
        since=ChangeRecord.of(since) if since is not None else None,
        since_note=note,
        history=tuple(ChangeRecord.of(c) for c in changes),
    )


def _state_of(change: ArchivedChange) -> bool:
    return Op(change.fields.get("op", "")) in _ADDS


def _state_before_base(
    on: bool, base: Base, before: Iterable[ArchivedChange]
) -> tuple[ArchivedChange | None, str]:
    """Where a state unchanged since the base came from, as far as the archive knows."""
    matching = [c for c in before if _state_of(c) == on]
    state = "on" if on else "off"
    if matching:
        last = matching[-1]
        return last, f"{state} the list at base {base.version}; last set by change {last.version}"
    if not on:
        return None, f"never on the list in the archive up to base {base.version}"
    where = f"checkpoint {base.checkpoint}" if base.checkpoint else "the base"
    return None, (
        f"on the list in {where} at {base.version}, before the archive holds its changes: "
        "the change that added it is older than the archive"
    )
