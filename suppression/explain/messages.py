"""An Explanation as the Explain RPC's protobuf response, numbers masked."""

from __future__ import annotations

from suppression.e164 import mask_number
from suppression.explain.model import ChangeRecord, Explanation
from suppression.v1 import suppression_pb2 as pb

__all__ = ["to_response"]


def to_response(explanation: Explanation) -> pb.ExplainResponse:
    """The response; the number is masked (the caller knows which one it asked about)."""
    response = pb.ExplainResponse(
        number_masked=mask_number(explanation.number),
        at=str(explanation.at),
        verdict=pb.SUPPRESSED if explanation.suppressed else pb.ALLOWED,
        verdict_basis=explanation.verdict_basis,
        base_version=str(explanation.base.version),
        base_checkpoint=explanation.base.checkpoint,
        base_sha256=explanation.base.sha256,
        archive_begins=str(explanation.archive_begins or ""),
        archive_ends=str(explanation.archive_ends or ""),
        damage=explanation.damage,
    )
    for answer in explanation.lists:
        item = response.lists.add(
            name=answer.name,
            kind=answer.kind,
            on_list=answer.on_list,
            since_note=answer.since_note,
        )
        if answer.since is not None:
            item.since.CopyFrom(_change(answer.since))
        item.history.extend(_change(change) for change in answer.history)
    for segment in explanation.segments:
        response.segments.add(name=segment.name, bytes=segment.bytes, sha256=segment.sha256)
    decided = explanation.policy
    if decided is not None:
        response.policy.CopyFrom(
            pb.ExplainedPolicy(
                policy=decided.policy,
                policy_version=decided.policy_version,
                verdict=decided.verdict,  # the enum value by name
                rules=decided.rules,
                exemptions=decided.exemptions,
                earliest_ms=decided.earliest_ms,
                decided_at_ms=decided.decided_at_ms,
                note=decided.note,
            )
        )
    return response


def _change(change: ChangeRecord) -> pb.ExplainedChange:
    return pb.ExplainedChange(
        version=change.version,
        op=change.op,
        list=change.list_name,
        source=change.source,
        actor=change.actor,
        evidence=change.evidence,
        timestamp_ms=change.timestamp_ms,
        producer=change.producer,
        numbers_in_change=change.numbers_in_change,
        block=change.block,
    )
