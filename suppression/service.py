"""The gRPC servicer: protobuf in, calls into the core, protobuf out. No business rules.

Domain errors become gRPC status codes here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import grpc

from suppression.checker import CheckOutcome, check_batch
from suppression.e164 import InvalidReason, Normalizer, NumberBlock, parse_block, validate_region
from suppression.entries import InvalidEntryError
from suppression.errors import (
    ChangeLogError,
    ConsentRequiredError,
    InvalidRequestError,
    NotReadyError,
    SuppressionError,
    UnknownListError,
)
from suppression.lists import Op, SuppressionLists, Version
from suppression.metrics import ServiceMetrics
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

__all__ = ["ChangeSink", "Freshness", "SuppressionServicer"]

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[SuppressionError], grpc.StatusCode], ...] = (
    (UnknownListError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConsentRequiredError, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidEntryError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ChangeLogError, grpc.StatusCode.UNAVAILABLE),
)


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the data is, as the change-log follower sees it."""

    stale: bool = False
    staleness_ms: int = 0
    fail_closed: bool = False


def _always_fresh() -> Freshness:
    return Freshness()


class ChangeSink(Protocol):
    """Where Suppress and Release write: the change log (see suppression.live)."""

    def submit(
        self,
        op: Op,
        list_name: str,
        numbers: Sequence[int],
        blocks: Sequence[NumberBlock],
        *,
        source: str,
        actor: str,
        evidence: str,
    ) -> Version:
        """Write the change and return once this replica applied it."""


class SuppressionServicer(pb_grpc.SuppressionServicer):
    """Serves Check, CheckStream and GetStatus over one :class:`SuppressionLists`."""

    def __init__(
        self,
        lists: SuppressionLists | None,
        metrics: ServiceMetrics,
        *,
        normalizer: Normalizer | None = None,
        max_batch: int = 100_000,
        freshness: Callable[[], Freshness] = _always_fresh,
    ) -> None:
        """Create the servicer.

        Args:
            lists: the data, or None until it is loaded (see :meth:`set_lists`).
            metrics: where to count answers.
            normalizer: parses text numbers.
            max_batch: the largest batch accepted.
            freshness: reports staleness; the follower provides it.
        """
        self._lists = lists
        self._metrics = metrics
        self._normalizer = normalizer or Normalizer()
        self._max_batch = max_batch
        self._freshness = freshness
        self._changes: ChangeSink | None = None

    def attach_change_log(self, changes: ChangeSink, freshness: Callable[[], Freshness]) -> None:
        """Accept Suppress and Release through ``changes``; report ``freshness``."""
        self._changes = changes
        self._freshness = freshness

    def set_lists(self, lists: SuppressionLists) -> None:
        """Start serving ``lists`` (called once loading finishes)."""
        self._lists = lists

    @property
    def lists(self) -> SuppressionLists | None:
        """The served lists, or None before loading finishes."""
        return self._lists

    def _answer(self, request: pb.CheckRequest) -> pb.CheckResponse:
        lists = self._lists
        if lists is None:
            raise NotReadyError("data is still loading; retry shortly")
        try:
            region = validate_region(request.default_region) if request.numbers else ""
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        freshness = self._freshness()
        outcome = check_batch(
            lists.view,
            request.e164,
            request.numbers,
            region,
            request.lists,
            self._normalizer,
            max_batch=self._max_batch,
            fail_closed=freshness.fail_closed,
        )
        self._metrics.record_check(outcome)
        return _to_response(outcome, request.request_id, freshness.stale)

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
        freshness = self._freshness()
        response = pb.GetStatusResponse(
            ready=self._lists is not None,
            stale=freshness.stale,
            staleness_ms=freshness.staleness_ms,
            max_batch=self._max_batch,
        )
        if self._lists is None:
            return response
        view = self._lists.view
        response.version = str(view.version)
        defaults = set(view.default_lists)
        for name in sorted(view.bitmaps):
            response.lists.add(
                name=name,
                count=len(view.bitmaps[name]),
                bytes=view.list_bytes(name),
                is_default=name in defaults,
                is_opt_out=view.infos[name].kind == "opt_out",
            )
        return response

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

    def _write(
        self,
        op: Op,
        request: pb.SuppressRequest | pb.ReleaseRequest,
        context: grpc.ServicerContext,
    ) -> pb.WriteResponse:
        changes = self._changes
        if changes is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server follows no change log, so a write could not be made durable; "
                "start it with --redis-url to accept Suppress and Release",
            )
            raise AssertionError("unreachable")
        try:
            numbers, blocks, invalid = self._write_numbers(request)
            if not request.list:
                raise InvalidRequestError("name the list to change in `list`")
            if not numbers and not blocks:
                raise InvalidRequestError("no valid numbers to write; see invalid_reasons")
            version = changes.submit(
                op,
                request.list,
                numbers,
                blocks,
                source=request.source,
                actor=request.actor,
                evidence=request.evidence,
            )
        except SuppressionError as exc:
            _abort(context, exc)
            raise AssertionError("unreachable") from exc
        applied = len(numbers) + sum(len(block) for block in blocks)
        response = pb.WriteResponse(version=str(version), applied=min(applied, 2**32 - 1))
        if invalid:
            response.invalid_reasons.update(cast(dict[int, pb.InvalidReason], invalid))
        return response

    def _write_numbers(
        self, request: pb.SuppressRequest | pb.ReleaseRequest
    ) -> tuple[list[int], list[NumberBlock], dict[int, int]]:
        """Valid numbers (deduplicated, in order), blocks, and reasons for the invalid ones."""
        total = len(request.e164) + len(request.numbers)
        if self._max_batch and total > self._max_batch:
            raise InvalidRequestError(
                f"{total:,} numbers exceed the maximum of {self._max_batch:,}; split them"
            )
        try:
            region = validate_region(request.default_region) if request.numbers else ""
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        values, reasons = self._normalizer.normalize_many(
            [f"+{value}" for value in request.e164], ""
        )
        blocks: list[NumberBlock] = []
        for text in request.numbers:
            try:
                block = parse_block(text)
            except ValueError:
                block = None
                values.append(0)
                reasons.append(InvalidReason.UNPARSEABLE)
                continue
            if block is not None:
                blocks.append(block)
                values.append(0)
                reasons.append(InvalidReason.VALID)
                continue
            value, reason = self._normalizer.normalize(text, region)
            values.append(value)
            reasons.append(reason)
        invalid = {index: reason for index, reason in enumerate(reasons) if reason}
        numbers = list(dict.fromkeys(value for value in values if value))
        return numbers, blocks, invalid


def _to_response(outcome: CheckOutcome, request_id: int, stale: bool) -> pb.CheckResponse:
    response = pb.CheckResponse(
        verdicts=cast(list[pb.Verdict], outcome.verdicts),
        matched=outcome.masks,
        list_names=outcome.list_names,
        normalized=outcome.normalized,
        version=str(outcome.version),
        stale=stale,
        request_id=request_id,
        failed_closed=outcome.failed_closed,
    )
    if outcome.invalid_reasons:
        response.invalid_reasons.update(cast(dict[int, pb.InvalidReason], outcome.invalid_reasons))
    return response


def _abort(context: grpc.ServicerContext, exc: SuppressionError) -> None:
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            context.abort(code, str(exc))
    logger.exception("unexpected error while answering")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
