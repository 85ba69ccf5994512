"""The gRPC servicer: protobuf in, calls into the core, protobuf out. No business rules.

Domain errors become gRPC status codes here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, KeysView, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
import numpy as np
import numpy.typing as npt

from suppression.admission import MAX_ECHO, short_quote
from suppression.auth import (
    Identity,
    PermissionDeniedError,
    Scope,
    Tenant,
    UnauthenticatedError,
    actor_for,
    authorize,
    current_identity,
    required_scopes,
    resolve_lists,
    resolve_write_list,
    visible_lists,
)
from suppression.checker import CheckOutcome, SingleOutcome, Verdict, pausing_between_slices
from suppression.e164 import Normalizer, NumberBlock, e164_reason, mask_number, validate_region
from suppression.errors import (
    ArchiveCoverageError,
    ArchiveError,
    ChangeLogError,
    ConsentRequiredError,
    InvalidEntryError,
    InvalidInputError,
    InvalidRequestError,
    MisroutedBatchError,
    NotReadyError,
    SnapshotError,
    SuppressionError,
    UnknownListError,
)
from suppression.explain.messages import to_response
from suppression.explain.request import point_of, single_number
from suppression.freshness import Freshness
from suppression.lanes import Lanes
from suppression.lists import ListKind, Op, Version
from suppression.metrics import ServiceMetrics
from suppression.numberfile import normalize_lines
from suppression.peersnapshot import SnapshotSource
from suppression.policy.batch import PolicyRequest
from suppression.quota import IdentityMetrics
from suppression.replica import Replica
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from suppression.wire import (
    E164_PACKED_WIDTH,
    one_byte_varints,
    pack_answer,
    pack_one,
    unpack_e164,
    unpack_one,
)

__all__ = ["SuppressionServicer"]

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[SuppressionError], grpc.StatusCode], ...] = (
    (UnknownListError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConsentRequiredError, grpc.StatusCode.FAILED_PRECONDITION),
    (MisroutedBatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidEntryError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ChangeLogError, grpc.StatusCode.UNAVAILABLE),
    (ArchiveCoverageError, grpc.StatusCode.FAILED_PRECONDITION),
    (ArchiveError, grpc.StatusCode.DATA_LOSS),
)


_RESOLVED_CACHE_SIZE = 4096
"""Distinct (tenant, requested lists) answers kept; requests name lists freely."""


@dataclass(frozen=True, slots=True)
class _ResolvedLists:
    """The lists each (tenant, requested lists) pair reads, for one set of list names."""

    names: frozenset[str]
    lists: dict[tuple[Tenant, tuple[str, ...]], tuple[str, ...]]


class SuppressionServicer(pb_grpc.SuppressionServicer):
    """Serves Check, CheckStream, GetStatus, Suppress and Release over one :class:`Replica`."""

    def __init__(
        self,
        replica: Replica,
        metrics: ServiceMetrics,
        *,
        normalizer: Normalizer | None = None,
        max_batch: int = 100_000,
        identity_metrics: IdentityMetrics | None = None,
        lanes: Lanes | None = None,
        bulk_elsewhere: int = 0,
    ) -> None:
        """Create the servicer.

        Args:
            replica: the data and the change log; it answers and writes.
            metrics: where to count answers.
            normalizer: parses text numbers.
            max_batch: the largest batch accepted.
            identity_metrics: per-identity counters, where authentication is on.
            lanes: puts interactive checks before bulk batches; a fresh one by default.
            bulk_elsewhere: the replica's bulk port: bulk batches are refused here
                (FAILED_PRECONDITION) and the message names that port; 0 serves them.
        """
        self._replica = replica
        self._metrics = metrics
        self._normalizer = normalizer or Normalizer()
        self._max_batch = max_batch
        self._identity_metrics = identity_metrics
        self._lanes = lanes or Lanes()
        self._bulk_elsewhere = bulk_elsewhere
        self._single_is_bulk = self._lanes.is_bulk(1)
        self._resolved = _ResolvedLists(frozenset(), {})
        self._snapshots = SnapshotSource(replica.data_dir)

    @property
    def normalizer(self) -> Normalizer:
        """The normalizer that parses text numbers, with its parse cache."""
        return self._normalizer

    def _answer(self, request: pb.CheckRequest) -> pb.CheckResponse:
        region = _region(request.default_region) if request.numbers else ""
        if request.lists:
            _check_list_names(request.lists)
        identity = current_identity()
        lists: Sequence[str] = request.lists
        if identity is not None:
            # A tenant sees its own lists and those shared with it; others do not exist for it.
            lists = self._tenant_lists(identity.tenant, request)
        single = self._single_number(request)
        if single is not None:
            return self._answer_one(request, single, lists, identity)
        e164 = _e164_of(request)
        lanes = self._lanes
        size = len(e164) + len(request.numbers)
        if lanes.is_bulk(size) and self._bulk_elsewhere:
            raise MisroutedBatchError(
                f"a batch of {size:,} numbers is bulk work (--bulk-threshold "
                f"{lanes.threshold:,}): send it to this replica's bulk port "
                f"{self._bulk_elsewhere}, which serves it apart from single-number checks"
            )
        if lanes.is_bulk(size):
            with lanes.bulk() as pause, pausing_between_slices(pause):
                outcome, freshness = self._check(request, e164, region, lists)
        else:
            with lanes.interactive():
                outcome, freshness = self._check(request, e164, region, lists)
        self._metrics.record_check(outcome)
        self._count_suppressed(identity, outcome.verdict_counts[Verdict.SUPPRESSED])
        return _to_response(outcome, request, freshness.stale)

    def _count_suppressed(self, identity: Identity | None, suppressed: int) -> None:
        """Count an answer's SUPPRESSED numbers to the caller, where authentication is on."""
        if identity is not None and self._identity_metrics is not None:
            self._identity_metrics.count_suppressed(identity.name, suppressed)

    def _single_number(self, request: pb.CheckRequest) -> int | None:
        """The number of a request that :meth:`_answer_one` answers; None for the rest.

        That is one E.164 integer (``e164`` or ``e164_packed``), with no text
        number, ``as_of_version`` or policy field, on a replica without
        policies: a dialer's single "may I dial?".
        """
        e164, packed = request.e164, request.e164_packed
        if len(e164) == 1 and not packed:
            number = e164[0]
        elif len(packed) == E164_PACKED_WIDTH and not e164:
            number = unpack_one(packed)
        else:
            return None
        if (
            request.numbers
            or request.as_of_version
            or _asks_policy(request)
            or self._replica.policies is not None
            or self._single_is_bulk
        ):
            return None
        return number

    def _answer_one(
        self,
        request: pb.CheckRequest,
        number: int,
        lists: Sequence[str],
        identity: Identity | None,
    ) -> pb.CheckResponse:
        """The single-number twin of the batch path: the same answer and metrics, less work.

        A single Check is a dialer waiting on the line; building a batch's
        arrays for it cost a fifth of its time at the server.
        """
        with self._lanes.interactive():
            outcome, freshness = self._replica.check_one(number, lists)
        self._metrics.record_one(outcome)
        self._count_suppressed(identity, int(outcome.verdict is Verdict.SUPPRESSED))
        return _one_response(outcome, request, freshness.stale)

    def _tenant_lists(self, tenant: Tenant, request: pb.CheckRequest) -> Sequence[str]:
        """The lists a tenant's check reads; under a policy, every list it reads must be visible.

        Raises:
            UnknownListError: a list is not visible to the tenant.
            InvalidRequestError: an unknown policy.
        """
        bitmaps = self._replica.view().bitmaps
        store = self._replica.policies
        if store is None:
            return self._visible_lists(tenant, request.lists, bitmaps.keys())
        if request.lists:
            return request.lists  # refused with the reason by the policy path
        try:
            policy = store.current.get(request.policy)
        except KeyError:
            return ()  # refused with the known policies by the policy path
        resolve_lists(tenant, [name for name in policy.lists() if name in bitmaps], bitmaps)
        return ()

    def _visible_lists(
        self, tenant: Tenant, requested: Sequence[str], names: KeysView[str]
    ) -> Sequence[str]:
        """:func:`resolve_lists`, remembered while the set of lists stays the same.

        Cached per (tenant, requested lists) and cleared whenever the lists
        (not their contents) change, since the answer depends on nothing else.
        """
        cache = self._resolved
        if cache.names != names:
            cache = self._resolved = _ResolvedLists(frozenset(names), {})
        key = (tenant, tuple(requested))
        resolved = cache.lists.get(key)
        if resolved is None:
            resolved = resolve_lists(tenant, requested, names)
            if len(cache.lists) < _RESOLVED_CACHE_SIZE:
                cache.lists[key] = resolved
        return resolved

    def _check(
        self,
        request: pb.CheckRequest,
        e164: Sequence[int] | npt.NDArray[np.uint64],
        region: str,
        lists: Sequence[str],
    ) -> tuple[CheckOutcome, Freshness]:
        return self._replica.check(
            e164,
            request.numbers,
            region,
            lists,
            self._normalizer,
            max_batch=self._max_batch,
            as_of=Version.parse(request.as_of_version) if request.as_of_version else None,
            policy=_policy_request(request),
        )

    def Check(  # noqa: N802 - gRPC method name
        self, request: pb.CheckRequest, context: grpc.ServicerContext
    ) -> pb.CheckResponse:
        """Answer one batch."""
        try:
            return self._answer(request)
        except SuppressionError as exc:
            _abort(context, exc)
            raise AssertionError("unreachable") from exc

    def CheckStream(  # noqa: N802 - gRPC method name
        self, request_iterator: Iterator[pb.CheckRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.CheckResponse]:
        """Answer each batch on the stream, in order."""
        for request in request_iterator:
            try:
                yield self._answer(request)
            except SuppressionError as exc:
                _abort(context, exc)

    def GetStatus(  # noqa: N802 - gRPC method name
        self, request: pb.GetStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetStatusResponse:
        """Report list sizes, the version and readiness; never list contents."""
        freshness = self._replica.freshness()
        lists = self._replica.lists
        response = pb.GetStatusResponse(
            ready=self._replica.serving,
            stale=freshness.stale,
            staleness_ms=freshness.staleness_ms,
            max_batch=self._max_batch,
            packed=True,
        )
        if lists is None:
            return response
        view = lists.view
        response.version = str(view.version)
        identity = current_identity()
        names: Sequence[str] = sorted(view.bitmaps)
        if identity is not None:
            # List names and sizes are for administrators, and only their tenant's.
            if Scope.ADMIN not in identity.scopes:
                return response
            names = visible_lists(identity.tenant, names)
        defaults = set(view.default_lists)
        for name in names:
            response.lists.add(
                name=name,
                count=len(view.bitmaps[name]),
                bytes=view.list_bytes(name),
                is_default=name in defaults,
                is_opt_out=view.infos[name].kind == "opt_out",
            )
        return response

    def Explain(  # noqa: N802 - gRPC method name
        self, request: pb.ExplainRequest, context: grpc.ServicerContext
    ) -> pb.ExplainResponse:
        """Explain one number at one point in time from the change archive."""
        try:
            number = single_number(request.number_e164, request.number, request.default_region)
            at, at_ms = point_of(request.version, request.at_ms)
            identity = current_identity()
            visible = identity.tenant.sees if identity is not None else None
            asked = PolicyRequest(
                request.policy,
                consent_day=request.consent_day,
                calling_line=request.calling_line,
            )
            explanation = self._replica.explain(
                number, at, at_time_ms=at_ms, visible=visible, policy=asked
            )
        except SuppressionError as exc:
            _abort(context, exc)
            raise AssertionError("unreachable") from exc
        return to_response(explanation)

    def Suppress(  # noqa: N802 - gRPC method name
        self, request: pb.SuppressRequest, context: grpc.ServicerContext
    ) -> pb.WriteResponse:
        """Add numbers to a list through the change log; returns once applied here."""
        return self._write(Op.ADD, request, context)

    def Release(  # noqa: N802 - gRPC method name
        self, request: pb.ReleaseRequest, context: grpc.ServicerContext
    ) -> pb.WriteResponse:
        """Remove numbers from a list through the change log; opt-outs need consent."""
        return self._write(Op.REMOVE, request, context)

    def FetchSnapshot(  # noqa: N802 - gRPC method name
        self, request: pb.FetchSnapshotRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SnapshotChunk]:
        """Stream the newest snapshot file (or resume one), for a replica starting empty."""
        try:
            yield from self._snapshots.chunks(request.name, request.offset)
        except SnapshotError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, _details(str(exc)))
        except NotReadyError as exc:  # no snapshot here: unlike UNAVAILABLE, waiting won't help
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _details(str(exc)))

    def RecordAttempts(  # noqa: N802 - gRPC method name
        self, request: pb.RecordAttemptsRequest, context: grpc.ServicerContext
    ) -> pb.WriteResponse:
        """Record dial attempts through the change log, for policy caps."""
        if not self._replica.accepts_writes:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server follows no change log, so attempts could not be shared with the "
                "other replicas; start it with --redis-url",
            )
            raise AssertionError("unreachable")
        try:
            numbers, times, lines = _attempts(request, self._max_batch)
            identity = current_identity()
            actor = actor_for(identity, "") if identity is not None else ""
            version = self._replica.record_attempts(numbers, times, lines, actor=actor)
        except SuppressionError as exc:
            _abort(context, exc)
            raise AssertionError("unreachable") from exc
        return pb.WriteResponse(version=str(version), applied=len(numbers))

    def _write(
        self,
        op: Op,
        request: pb.SuppressRequest | pb.ReleaseRequest,
        context: grpc.ServicerContext,
    ) -> pb.WriteResponse:
        if not self._replica.accepts_writes:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server follows no change log, so a write could not be made durable; "
                "start it with --redis-url to accept Suppress and Release",
            )
            raise AssertionError("unreachable")
        try:
            if not request.list:
                raise InvalidRequestError("name the list to change in `list`")
            _check_list_names((request.list,))
            numbers, blocks, invalid = self._write_numbers(request)
            if not numbers and not blocks:
                raise InvalidRequestError("no valid numbers to write; see invalid_reasons")
            create = isinstance(request, pb.SuppressRequest) and request.create_list
            actor = self._authorized_actor(op, request, bool(blocks), create)
            version = self._replica.submit(
                op,
                request.list,
                numbers,
                blocks,
                source=request.source,
                actor=actor,
                evidence=request.evidence,
                create_list=create,
                days=_days_of(request, numbers, blocks) if op is Op.ADD else None,
            )
        except SuppressionError as exc:
            _abort(context, exc)
            raise AssertionError("unreachable") from exc
        applied = len(numbers) + sum(len(block) for block in blocks)
        response = pb.WriteResponse(version=str(version), applied=min(applied, 2**32 - 1))
        if invalid:
            response.invalid_reasons.update(cast(dict[int, pb.InvalidReason], invalid))
        return response

    def _authorized_actor(
        self,
        op: Op,
        request: pb.SuppressRequest | pb.ReleaseRequest,
        blocks: bool,
        create: bool,
    ) -> str:
        """Check the caller may make this write; the actor to record (the caller's identity).

        Raises:
            PermissionDeniedError: a scope is missing, or the list is read-only for the tenant.
            UnknownListError: the tenant cannot see the list.
        """
        identity = current_identity()
        if identity is None:
            return request.actor
        view = self._replica.view()
        exists = resolve_write_list(identity.tenant, request.list, view.bitmaps)
        info = view.infos.get(request.list)
        needed = required_scopes(
            "Release" if op is Op.REMOVE else "Suppress",
            opt_out=info is None or info.kind is ListKind.OPT_OUT,
            blocks=blocks,
            creates_list=create and not exists,
        )
        authorize(identity, needed)
        return actor_for(identity, request.actor)

    def _write_numbers(
        self, request: pb.SuppressRequest | pb.ReleaseRequest
    ) -> tuple[list[int], list[NumberBlock], dict[int, int]]:
        """Valid numbers (deduplicated, in order), blocks, and reasons for the invalid ones."""
        total = len(request.e164) + len(request.numbers)
        if self._max_batch and total > self._max_batch:
            raise InvalidRequestError(
                f"{total:,} numbers exceed the maximum of {self._max_batch:,}; split them"
            )
        region = _region(request.default_region) if request.numbers else ""
        # Integers become "+digits" text: the fast canonical path, which ignores the region.
        texts = [f"+{value}" for value in request.e164]
        texts.extend(request.numbers)
        parsed = normalize_lines(enumerate(texts), region, self._normalizer)
        invalid = {index: int(reason) for index, reason in parsed.skipped_lines}
        numbers = list(dict.fromkeys(parsed.numbers.tolist()))
        return numbers, parsed.blocks, invalid


def _days_of(
    request: pb.SuppressRequest | pb.ReleaseRequest,
    numbers: Sequence[int],
    blocks: Sequence[NumberBlock],
) -> list[int] | None:
    """A Suppress request's days, one per valid number; None when it gives none.

    Raises:
        InvalidRequestError: days with blocks or text numbers, not parallel to ``e164``,
            both ``day`` and ``days``, or a day out of range.
    """
    if not isinstance(request, pb.SuppressRequest) or not (request.day or request.days):
        return None
    if request.day and request.days:
        raise InvalidRequestError("give one day for all (day) or one per number (days), not both")
    if blocks:
        raise InvalidRequestError("+1900 blocks carry no days: send them without day or days")
    if request.day:
        return [request.day] * len(numbers)
    if request.numbers or len(request.days) != len(request.e164):
        raise InvalidRequestError(
            f"{len(request.days):,} days for {len(request.e164):,} e164 numbers"
            f"{' and text numbers' if request.numbers else ''}: days go one per e164 number, "
            "parallel to it (text numbers take day)"
        )
    if min(request.days) < 1:
        raise InvalidRequestError("a day is 1 or more: days count from 1970-01-01")
    # Canonical integers normalize to themselves; the last day given for a number wins.
    by_number = dict(zip(request.e164, request.days, strict=True))
    return [by_number[number] for number in numbers]


def _attempts(
    request: pb.RecordAttemptsRequest, max_batch: int
) -> tuple[list[int], list[int], list[str]]:
    """The attempts of a request as numbers, times in seconds and lines; refused if malformed.

    Raises:
        InvalidRequestError: arrays not parallel, an invalid number, too many attempts.
    """
    count = len(request.e164)
    if not count:
        raise InvalidRequestError("no attempts: give e164 and times_ms, one per attempt")
    if max_batch and count > max_batch:
        raise InvalidRequestError(f"{count:,} attempts exceed the maximum of {max_batch:,}")
    if len(request.times_ms) != count:
        raise InvalidRequestError(
            f"{count:,} numbers but {len(request.times_ms):,} times_ms: give one time per attempt"
        )
    lines = list(request.calling_lines)
    if len(lines) == 1:
        lines = lines * count
    elif not lines:
        lines = [""] * count
    elif len(lines) != count:
        raise InvalidRequestError(
            f"{len(lines):,} calling_lines for {count:,} attempts: give none, one, or one each"
        )
    numbers = list(request.e164)
    for index, number in enumerate(numbers):
        reason = e164_reason(number)
        if reason:
            raise InvalidRequestError(
                f"attempt {index}: {mask_number(number)} is not a valid E.164 number "
                f"({reason.name}); nothing was recorded"
            )
    return numbers, [t // 1000 for t in request.times_ms], lines


def _asks_policy(request: pb.CheckRequest) -> bool:
    """Whether the request sets any field only a policy reads."""
    return bool(
        request.policy
        or request.decide_at_ms
        or request.consent_days
        or request.consent_day
        or request.calling_line
    )


def _policy_request(request: pb.CheckRequest) -> PolicyRequest | None:
    """What the request asks of a policy; None when it asks nothing (the default policy)."""
    if not _asks_policy(request):
        return None
    return PolicyRequest(
        request.policy,
        request.decide_at_ms,
        request.consent_days,
        request.consent_day,
        request.calling_line,
    )


def _e164_of(request: pb.CheckRequest) -> Sequence[int] | npt.NDArray[np.uint64]:
    """The request's E.164 integers, from ``e164`` or ``e164_packed``.

    Raises:
        InvalidRequestError: both are given, or ``e164_packed`` is not whole numbers.
    """
    if not request.e164_packed:
        return request.e164
    if request.e164:
        raise InvalidRequestError("give the E.164 integers in e164 or in e164_packed, not in both")
    return unpack_e164(request.e164_packed)


def _response_head(
    outcome: CheckOutcome | SingleOutcome,
    request: pb.CheckRequest,
    stale: bool,
    normalized: Sequence[int] = (),
) -> pb.CheckResponse:
    """A response with what every answer carries besides its per-number fields.

    Fields left at their defaults are not set: each keyword costs the
    constructor about 0.1 µs, and much more between two single-number calls.
    """
    response = pb.CheckResponse(version=str(outcome.version))
    response.list_names.extend(outcome.list_names)
    if normalized:
        response.normalized.extend(normalized)
    if stale:
        response.stale = True
    if request.request_id:
        response.request_id = request.request_id
    if outcome.failed_closed:
        response.failed_closed = True
    return response


def _set_packed(response: pb.CheckResponse, packed: tuple[bytes, bytes, int]) -> None:
    response.verdicts_packed, response.matched_packed, response.matched_width = packed


def _one_response(
    outcome: SingleOutcome, request: pb.CheckRequest, stale: bool
) -> pb.CheckResponse:
    response = _response_head(outcome, request, stale)
    if request.packed_answer:
        _set_packed(response, pack_one(outcome.verdict, outcome.mask, len(outcome.list_names)))
    else:
        response.verdicts.append(cast(pb.Verdict, outcome.verdict))
        response.matched.append(outcome.mask)
    if outcome.invalid_reason:
        response.invalid_reasons[0] = cast(pb.InvalidReason, outcome.invalid_reason)
    return response


_VERDICTS_FIELD = pb.CheckResponse.DESCRIPTOR.fields_by_name["verdicts"].number
_MATCHED_FIELD = pb.CheckResponse.DESCRIPTOR.fields_by_name["matched"].number


def _set_repeated(response: pb.CheckResponse, outcome: CheckOutcome) -> None:
    """``verdicts`` and ``matched``, parsed from their wire bytes where numpy holds them.

    ``extend`` with two lists of 10,000 ints costs about 450 µs (and 90 µs more to
    make the lists); parsing the same fields from bytes about 65 µs. Masks of eight
    lists or more may need several bytes each, and take ``extend``.
    """
    verdicts, masks = outcome.verdict_array, outcome.mask_array
    if isinstance(verdicts, np.ndarray) and isinstance(masks, np.ndarray):
        encoded_verdicts = one_byte_varints(_VERDICTS_FIELD, verdicts)
        encoded_masks = one_byte_varints(_MATCHED_FIELD, masks)
        if encoded_verdicts is not None and encoded_masks is not None:
            response.MergeFromString(encoded_verdicts + encoded_masks)
            return
    response.verdicts.extend(cast(list[pb.Verdict], outcome.verdicts))
    response.matched.extend(outcome.masks)


def _to_response(outcome: CheckOutcome, request: pb.CheckRequest, stale: bool) -> pb.CheckResponse:
    response = _response_head(outcome, request, stale, outcome.normalized)
    if request.packed_answer:
        # Two bytes fields in place of two Python lists of ints: about 80 ns a number less.
        packed = pack_answer(outcome.verdict_array, outcome.mask_array, len(outcome.list_names))
        _set_packed(response, packed)
    else:
        _set_repeated(response, outcome)
    if outcome.invalid_reasons:
        response.invalid_reasons.update(cast(dict[int, pb.InvalidReason], outcome.invalid_reasons))
    answer = outcome.policy
    if answer is not None:
        response.policy = answer.policy
        response.policy_version = answer.version
        response.rules.extend(answer.rules)
        response.rule_names.extend(answer.rule_names)
        response.exemptions.extend(answer.exemptions)
        response.exemption_names.extend(answer.exemption_names)
        response.earliest_ms.extend(answer.earliest_ms)
    return response


_MAX_LIST_NAME = 64
"""No list name is longer (``entries`` refuses them); longer ones are refused unquoted."""
_MAX_REGION = 8
"""ISO 3166-1 codes have two letters; room for stray whitespace."""
_MAX_DETAILS = 1024
"""Characters of an error message sent: gRPC sends it as a header, which clients
refuse beyond 8-16 KiB, reporting RESOURCE_EXHAUSTED instead of the real error."""


def _check_list_names(names: Sequence[str]) -> None:
    """Refuse names longer than any list's before they reach an error that echoes them.

    Raises:
        InvalidRequestError: a name is longer than :data:`_MAX_LIST_NAME` characters.
    """
    for name in names:
        if len(name) > _MAX_LIST_NAME:
            raise InvalidRequestError(
                f"list name {short_quote(name)} is longer than {_MAX_LIST_NAME} characters, "
                "so no list has it; ask GetStatus for the list names"
            )


def _region(text: str) -> str:
    """The validated region; overlong text is refused with a short quote.

    Raises:
        InvalidInputError: the region is unknown.
    """
    if len(text) > _MAX_REGION:
        raise InvalidInputError(
            f"unknown default region {short_quote(text)}: give an ISO 3166-1 alpha-2 code "
            "such as US or CN"
        )
    return validate_region(text)


def _details(message: str) -> str:
    """``message``, cut to :data:`_MAX_DETAILS` characters: the last guard on echoes."""
    if len(message) <= _MAX_DETAILS:
        return message
    return f"{message[: _MAX_DETAILS - MAX_ECHO]}… ({len(message):,} characters in all)"


def _abort(context: grpc.ServicerContext, exc: SuppressionError) -> None:
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            context.abort(code, _details(str(exc)))
    logger.exception("unexpected error while answering")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
