"""Batches split into requests of at most ``max_batch`` numbers, and answers put back together."""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from suppression.client.errors import PolicyVersionMismatchError
from suppression.client.packing import pack_e164, unpack_masks
from suppression.client.policyfields import PolicyFields
from suppression.client.result import CheckResult, Part, PolicyArrays, version_key
from suppression.v1 import suppression_pb2 as pb

__all__ = ["Piece", "merge", "split"]

_NO_POLICY = PolicyFields()


@dataclass(frozen=True, slots=True)
class Piece:
    """One request's share of a batch: numbers ``start`` to ``start + len``."""

    start: int
    e164: Sequence[int]
    numbers: Sequence[str]
    consent_days: Sequence[int] = ()
    """The consent day of each of this piece's numbers (wire values), or empty."""

    def __len__(self) -> int:
        return len(self.e164) + len(self.numbers)

    def request(
        self,
        region: str,
        lists: Sequence[str],
        request_id: int = 0,
        policy: PolicyFields = _NO_POLICY,
        packed: bool = False,
    ) -> pb.CheckRequest:
        """The CheckRequest carrying this piece, with the check's policy fields.

        ``packed`` sends the E.164 integers in ``e164_packed``, which only servers
        that answer packed read: an older one would see no numbers.
        """
        request = pb.CheckRequest(
            numbers=self.numbers,
            default_region=region if self.numbers else "",
            lists=lists,
            request_id=request_id,
            policy=policy.policy,
            decide_at_ms=policy.decide_at_ms,
            consent_days=self.consent_days,
            consent_day=policy.consent_day,
            calling_line=policy.calling_line,
            # Servers that know it answer in two bytes fields; older ones ignore it.
            packed_answer=True,
        )
        if packed and self.e164:
            request.e164_packed = pack_e164(self.e164)
        else:
            request.e164.extend(self.e164)
        return request


def split(
    e164: Sequence[int],
    numbers: Sequence[str],
    max_batch: int,
    consent_days: Sequence[int] = (),
) -> list[Piece]:
    """Cut a batch (E.164 integers first, then text) into pieces of at most ``max_batch``.

    ``consent_days``, when given, is parallel to the whole batch and is cut with its
    numbers. An empty batch is one empty piece, so the caller still learns the version.
    """
    total = len(e164) + len(numbers)
    if total <= max_batch:
        return [Piece(0, e164, numbers, consent_days)]
    pieces = []
    count_e164 = len(e164)
    for start in range(0, total, max_batch):
        end = min(start + max_batch, total)
        pieces.append(
            Piece(
                start,
                e164[start : min(end, count_e164)] if start < count_e164 else (),
                numbers[max(start - count_e164, 0) : max(end - count_e164, 0)],
                consent_days[start:end],
            )
        )
    return pieces


def _normalized(piece: Piece, answer: pb.CheckResponse) -> list[int]:
    """Every number's E.164 integer: integers as sent, text as the server normalized it."""
    values = list(piece.e164)
    for index in answer.invalid_reasons:
        if index < len(values):
            values[index] = 0
    values.extend(answer.normalized)
    return values


def merge(answered: Sequence[tuple[Piece, pb.CheckResponse, str]]) -> CheckResult:
    """One :class:`CheckResult` from the answers to every piece, in piece order.

    Its version is the OLDEST piece's version. Bitmasks of pieces whose servers
    named their lists, rules or exemptions in another order are re-expressed over one
    table. Every piece must have been decided under the same policy and policy version:
    one result proves one policy.

    Args:
        answered: each piece, its answer and the target that answered it.

    Raises:
        ValueError: an answer does not have one verdict per number sent.
        PolicyVersionMismatchError: pieces were decided under different policies or
            policy versions.
    """
    verdict_parts: list[Sequence[int]] = []
    mask_parts: list[Sequence[int]] = []
    names: list[str] = []
    reasons: dict[int, int] = {}
    normalized: list[int] = []
    parts = []
    stale = failed_closed = False
    policy = _policy_of(answered)
    for piece, answer, target in answered:
        piece_verdicts, piece_masks = _verdicts_and_masks(piece, answer, target)
        verdict_parts.append(piece_verdicts)
        mask_parts.append(_remap(piece_masks, list(answer.list_names), names))
        for index, reason in answer.invalid_reasons.items():
            reasons[piece.start + index] = reason
        normalized.extend(_normalized(piece, answer))
        stale |= answer.stale
        failed_closed |= answer.failed_closed
        if policy is not None:
            _extend_policy(policy, piece, answer, target)
        parts.append(
            Part(
                piece.start,
                len(piece),
                target,
                answer.version,
                policy=answer.policy,
                policy_version=answer.policy_version,
            )
        )
    oldest = min((part.version for part in parts), key=version_key, default="")
    return CheckResult(
        _joined(verdict_parts),
        _joined(mask_parts),
        names,
        reasons,
        normalized,
        version=oldest,
        stale=stale,
        failed_closed=failed_closed,
        parts=parts,
        policy=policy,
    )


def _joined(parts: Sequence[Sequence[int]]) -> Sequence[int]:
    """The parts end to end: packed ones stay packed, one part stays as it is."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(part, bytes) for part in parts):
        return b"".join(cast(Sequence[bytes], parts))
    first = parts[0]
    if isinstance(first, array.array) and all(
        isinstance(part, array.array) and part.typecode == first.typecode for part in parts
    ):
        joined = array.array(first.typecode)
        for part in parts:
            joined.extend(part)
        return joined
    return [value for part in parts for value in part]


def _verdicts_and_masks(
    piece: Piece, answer: pb.CheckResponse, target: str
) -> tuple[Sequence[int], Sequence[int]]:
    """One answer's verdicts and bitmasks, from the packed fields or the repeated ones.

    Raises:
        ValueError: the answer does not have one verdict and one bitmask per number sent.
    """
    count = len(piece)
    if answer.matched_width:
        if len(answer.verdicts_packed) != count:
            raise ValueError(
                f"server {target} answered {len(answer.verdicts_packed)} packed verdicts for "
                f"{count} numbers; it does not speak this protocol version"
            )
        try:
            masks = unpack_masks(answer.matched_packed, answer.matched_width, count)
        except ValueError as exc:
            raise ValueError(f"server {target}: {exc}") from None
        return answer.verdicts_packed, masks
    if len(answer.verdicts) != count or len(answer.matched) != count:
        raise ValueError(
            f"server {target} answered {len(answer.verdicts)} verdicts for "
            f"{count} numbers; it does not speak this protocol version"
        )
    return list(answer.verdicts), list(answer.matched)


def _policy_of(answered: Sequence[tuple[Piece, pb.CheckResponse, str]]) -> PolicyArrays | None:
    """Empty policy arrays for the merged answer; None when no piece was decided under one.

    Raises:
        PolicyVersionMismatchError: the pieces name different policies or versions.
    """
    seen = {(answer.policy, answer.policy_version) for _, answer, _ in answered}
    if len(seen) > 1:
        described = ", ".join(
            f"numbers {piece.start}-{piece.start + len(piece) - 1} from {target}: "
            f"{answer.policy or '(no policy)'} {answer.policy_version or ''}".rstrip()
            for piece, answer, target in answered
        )
        raise PolicyVersionMismatchError(
            "the batch was split and its parts were decided under different policies or "
            f"policy versions ({described}); one result must prove one policy, so nothing "
            "is returned: send it again once every replica has the same policy file (or send "
            "batches no larger than max_batch)"
        )
    ((name, version),) = seen or {("", "")}
    if not name and not version:
        return None
    return PolicyArrays(name, version)


def _remap(masks: Sequence[int], names: list[str], table: list[str]) -> Sequence[int]:
    """``masks`` over ``names`` as masks over ``table``, which grows with new names."""
    for name in names:
        if name not in table:
            table.append(name)
    if names == table[: len(names)]:
        return masks
    bits = [(bit, table.index(name)) for bit, name in enumerate(names)]
    remapped = []
    for mask in masks:
        value = 0
        if mask:
            for bit, to in bits:
                value |= (mask >> bit & 1) << to
        remapped.append(value)
    return remapped


def _extend_policy(
    policy: PolicyArrays, piece: Piece, answer: pb.CheckResponse, target: str
) -> None:
    """Append one answer's per-number policy arrays, over the merged name tables.

    Raises:
        ValueError: the arrays do not have one entry per number sent.
    """
    count = len(piece)
    if not (len(answer.rules) == len(answer.exemptions) == len(answer.earliest_ms) == count):
        raise ValueError(
            f"server {target} answered policy {answer.policy!r} without one rule mask, "
            f"exemption mask and earliest time per number ({count} sent); it does not "
            "speak this protocol version"
        )
    policy.rules.extend(_remap(answer.rules, list(answer.rule_names), policy.rule_names))
    policy.exemptions.extend(
        _remap(answer.exemptions, list(answer.exemption_names), policy.exemption_names)
    )
    policy.earliest_ms.extend(answer.earliest_ms)
