"""Batches split into requests of at most ``max_batch`` numbers, and answers put back together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from suppression.client.result import CheckResult, Part, version_key
from suppression.v1 import suppression_pb2 as pb

__all__ = ["Piece", "merge", "split"]


@dataclass(frozen=True, slots=True)
class Piece:
    """One request's share of a batch: numbers ``start`` to ``start + len``."""

    start: int
    e164: Sequence[int]
    numbers: Sequence[str]

    def __len__(self) -> int:
        return len(self.e164) + len(self.numbers)

    def request(self, region: str, lists: Sequence[str], request_id: int = 0) -> pb.CheckRequest:
        """The CheckRequest carrying this piece."""
        return pb.CheckRequest(
            e164=self.e164,
            numbers=self.numbers,
            default_region=region if self.numbers else "",
            lists=lists,
            request_id=request_id,
        )


def split(e164: Sequence[int], numbers: Sequence[str], max_batch: int) -> list[Piece]:
    """Cut a batch (E.164 integers first, then text) into pieces of at most ``max_batch``.

    An empty batch is one empty piece, so the caller still learns the version.
    """
    total = len(e164) + len(numbers)
    if total <= max_batch:
        return [Piece(0, e164, numbers)]
    pieces = []
    count_e164 = len(e164)
    for start in range(0, total, max_batch):
        end = min(start + max_batch, total)
        pieces.append(
            Piece(
                start,
                e164[start : min(end, count_e164)] if start < count_e164 else (),
                numbers[max(start - count_e164, 0) : max(end - count_e164, 0)],
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
    named their lists in another order are re-expressed over one table.

    Args:
        answered: each piece, its answer and the target that answered it.

    Raises:
        ValueError: an answer does not have one verdict per number sent.
    """
    verdicts: list[int] = []
    masks: list[int] = []
    names: list[str] = []
    reasons: dict[int, int] = {}
    normalized: list[int] = []
    parts = []
    stale = failed_closed = False
    for piece, answer, target in answered:
        if len(answer.verdicts) != len(piece) or len(answer.matched) != len(piece):
            raise ValueError(
                f"server {target} answered {len(answer.verdicts)} verdicts for "
                f"{len(piece)} numbers; it does not speak this protocol version"
            )
        verdicts.extend(answer.verdicts)
        masks.extend(_remap(answer.matched, list(answer.list_names), names))
        for index, reason in answer.invalid_reasons.items():
            reasons[piece.start + index] = reason
        normalized.extend(_normalized(piece, answer))
        stale |= answer.stale
        failed_closed |= answer.failed_closed
        parts.append(Part(piece.start, len(piece), target, answer.version))
    oldest = min((part.version for part in parts), key=version_key, default="")
    return CheckResult(
        verdicts,
        masks,
        names,
        reasons,
        normalized,
        version=oldest,
        stale=stale,
        failed_closed=failed_closed,
        parts=parts,
    )


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
