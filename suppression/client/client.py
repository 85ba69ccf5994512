"""The client: channels to several targets, deadlines, retries, hedging, batch splitting."""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from suppression.client.assembly import Piece, merge, split
from suppression.client.attempts import AttemptTime, RecordedAttempts, record_attempts
from suppression.client.config import ClientConfig
from suppression.client.errors import ClientError, DeadlineExceededError, error_from_rpc
from suppression.client.policyfields import (
    ConsentDay,
    DecideAt,
    PolicyFields,
    consent_days_of,
    day_of,
    ms_of,
)
from suppression.client.result import CheckResult, ListInfo, Status
from suppression.client.stream import CheckStream
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

__all__ = ["SuppressionClient"]

logger = logging.getLogger(__name__)

_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _channel(target: str, config: ClientConfig) -> grpc.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        *config.keepalive.channel_options(),
        *config.channel_options,
    ]
    tls = config.tls
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.root_certificates),
        private_key=_read(tls.private_key),
        certificate_chain=_read(tls.certificate_chain),
    )
    return grpc.secure_channel(target, credentials, options=options)


class SuppressionClient:
    """Asks one or more suppression servers whether numbers may be dialed.

    Calls rotate over the targets; a call that fails with UNAVAILABLE is sent again,
    after a jittered exponential pause, to the next target (see
    :class:`~suppression.client.RetryPolicy`). Every call has a deadline: the
    config's default, or the method's ``timeout=``. Thread-safe: share one client.

    Example::

        with SuppressionClient(ClientConfig(targets=("10.0.0.7:50051", "10.0.0.8:50051"))) as c:
            result = c.check(e164=[8613800138000, 12125550123])
            for index in result.suppressed_indexes():
                print(result[index].e164, result[index].lists)
            store(call_id, result.version)   # what the lists said when you dialed
    """

    def __init__(self, config: ClientConfig) -> None:
        """Open a channel to every target (connections are made on first use).

        Args:
            config: targets, deadlines, retries, hedging, keepalive, credentials.

        Raises:
            OSError: a TLS file cannot be read.
        """
        self.config = config
        self._channels = {
            target: _channel(target, config)
            for target in dict.fromkeys((*config.targets, *config.bulk_targets))
        }
        self._stubs: dict[str, Any] = {
            target: pb_grpc.SuppressionStub(channel)  # type: ignore[no-untyped-call]
            for target, channel in self._channels.items()
        }
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {config.token}"),) if config.token else ()
        )
        self._turn = itertools.count()
        self._max_batch = config.max_batch
        self._lock = threading.Lock()
        self._packed: dict[str, bool] = {}
        """Targets seen answering packed, which therefore read ``e164_packed``."""

    # -- plumbing -------------------------------------------------------------

    def __enter__(self) -> SuppressionClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every channel; calls in progress fail with CANCELLED."""
        for channel in self._channels.values():
            channel.close()

    def _order(self, bulk: bool = False) -> list[str]:
        """The targets (the bulk ones for bulk work, if any), starting at the next in turn."""
        targets = (bulk and self.config.bulk_targets) or self.config.targets
        first = next(self._turn) % len(targets)
        return [*targets[first:], *targets[:first]]

    def _pause(self, attempt: int, deadline: float) -> None:
        policy = self.config.retry
        ceiling = min(policy.max_backoff, policy.initial_backoff * policy.multiplier**attempt)
        time.sleep(min(random.uniform(0, ceiling), max(0.0, deadline - time.monotonic())))

    def _call(
        self, method: str, request: Any, timeout: float | None, *, bulk: bool = False
    ) -> tuple[Any, str]:
        """Make a unary call with retries; returns the answer and the target that gave it.

        ``bulk`` sends it to the bulk targets, where there are some. ``request`` may
        be a function of the target, which builds the request for it.

        Raises:
            ClientError: the mapped failure of the last attempt.
        """
        policy = self.config.retry
        deadline = time.monotonic() + (self.config.timeout if timeout is None else timeout)
        order = self._order(bulk)
        failure: tuple[grpc.RpcError, str] | None = None
        attempt = 0
        for attempt in range(policy.max_attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            target = order[attempt % len(order)]
            limit = remaining
            if policy.attempt_timeout is not None:
                limit = min(remaining, policy.attempt_timeout)
            try:
                answer = getattr(self._stubs[target], method)(
                    request(target) if callable(request) else request,
                    timeout=limit,
                    metadata=self._metadata,
                )
                return answer, target
            except grpc.RpcError as exc:
                failure = (exc, target)
                if not self._retryable(exc.code(), deadline):
                    raise error_from_rpc(exc, target, attempt + 1) from None
                logger.debug("%s on %s failed with %s; retrying", method, target, exc.code())
            if attempt + 1 < policy.max_attempts:
                self._pause(attempt, deadline)
        if failure is None:
            raise DeadlineExceededError(
                f"no attempt could be made within the {timeout or self.config.timeout:g} s "
                "deadline; raise the timeout",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        raise error_from_rpc(failure[0], failure[1], attempt + 1) from None

    @staticmethod
    def _retryable(code: grpc.StatusCode, deadline: float) -> bool:
        if code in _RETRYABLE:
            return True
        # An attempt that timed out may be retried while the call's deadline allows:
        # every call here is a read, so sending it twice is harmless.
        return code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() < deadline

    # -- calls ----------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> Status:
        """One server's GetStatus: its lists, version, readiness and ``max_batch``.

        Raises:
            ClientError: no target answered, or one refused (see the subclasses).
        """
        answer, target = self._call("GetStatus", pb.GetStatusRequest(), timeout)
        return Status(
            target=target,
            version=answer.version,
            ready=answer.ready,
            stale=answer.stale,
            staleness_ms=answer.staleness_ms,
            max_batch=answer.max_batch,
            lists=tuple(
                ListInfo(item.name, item.count, item.bytes, item.is_default, item.is_opt_out)
                for item in answer.lists
            ),
        )

    def max_batch(self) -> int:
        """Numbers per request: configured, or read once from a server's GetStatus.

        Raises:
            ClientError: it had to be asked and no target answered.
        """
        if self._max_batch is None:
            with self._lock:
                if self._max_batch is None:
                    self._max_batch = self.status().max_batch or 100_000
        return self._max_batch

    def check(
        self,
        e164: Sequence[int] = (),
        numbers: Sequence[str] = (),
        *,
        lists: Sequence[str] | None = None,
        region: str | None = None,
        timeout: float | None = None,
        policy: str = "",
        decide_at: DecideAt | None = None,
        consent_days: Sequence[ConsentDay] | None = None,
        consent_day: ConsentDay = None,
        calling_line: str = "",
    ) -> CheckResult:
        """Check a batch; larger than ``max_batch``, it is sent as several requests.

        The policy arguments need a server started with ``--policy-file``; one without
        refuses them (InvalidRequestError) rather than ignore them. A server with one
        decides every check under a policy, named or its default (docs/policy.md).

        Args:
            e164: numbers as E.164 integers (``8613800138000``), the fast path.
            numbers: numbers as text in any format; national forms need ``region``.
            lists: lists to check; None uses the config's, empty the server's defaults.
                Under a policy, leave it empty: the policy says which lists suppress.
            region: default region for national forms; None uses the config's.
            timeout: deadline in seconds of each request, retries included.
            policy: the pre-dial policy to decide under; empty: the server's default.
            decide_at: the moment to decide for (an aware datetime, or ms since the
                epoch); None: now, on the answering server's clock (each part's own
                when the batch is split: pass it to decide every part for one moment).
            consent_days: the day consent was obtained, one per number (E.164 integers
                first, then text; None where there is none): the reassigned check.
            consent_day: one consent day for the whole batch.
            calling_line: the caller ID or SIM the batch would be dialed from; its
                attempt caps apply.

        Returns:
            Results indexed like the input, E.164 integers first, then text. When the
            batch was split, ``version`` is the OLDEST part's and ``parts`` lists each.
            Under a policy, ``policy`` and ``policy_version`` name it, DEFERRED numbers
            carry ``earliest``, and each number its rules and exemptions.

        Raises:
            InvalidRequestError: an unknown list, region or policy, a naive datetime,
                consent days not one per number; never retried.
            PolicyVersionMismatchError: the parts of a split batch were decided under
                different policy versions (a reload in between).
            UnavailableError: no target answered within the attempts and the deadline.
            ClientError: another refusal (see the subclasses).
        """
        chosen = self.config.lists if lists is None else tuple(lists)
        chosen_region = self.config.region if region is None else region
        total = len(e164) + len(numbers)
        fields = _fields(policy, decide_at, consent_day, calling_line)
        days = consent_days_of(consent_days, total)
        size = self.max_batch() if total > 1 else 1
        answered = []
        threshold = self.config.bulk_threshold
        for piece in split(e164, numbers, size, days):
            answer, target = self._check_piece(
                piece, chosen_region, chosen, fields, timeout, len(piece) >= threshold
            )
            answered.append((piece, answer, target))
        return self._merge(answered)

    def _check_piece(
        self,
        piece: Piece,
        region: str,
        lists: Sequence[str],
        fields: PolicyFields,
        timeout: float | None,
        bulk: bool,
    ) -> tuple[Any, str]:
        """One piece's Check: numbers packed to targets known to read them.

        A target is known to once it answers packed. One that then answers a packed
        request unpacked (rolled back to an older release) read no numbers: it is
        forgotten and the piece is sent again with ``e164``.
        """
        packed = self._packed
        sent: dict[str, pb.CheckRequest] = {}

        def request_for(target: str) -> pb.CheckRequest:
            sent[target] = piece.request(
                region, lists, policy=fields, packed=packed.get(target, False)
            )
            return sent[target]

        answer, target = self._call("Check", request_for, timeout, bulk=bulk)
        if answer.matched_width:
            packed[target] = True
        elif sent[target].e164_packed:
            packed[target] = False
            sent.clear()
            answer, target = self._call("Check", request_for, timeout, bulk=bulk)
        return answer, target

    def check_one(
        self,
        number: int | str,
        *,
        lists: Sequence[str] | None = None,
        region: str | None = None,
        timeout: float | None = None,
        policy: str = "",
        decide_at: DecideAt | None = None,
        consent_day: ConsentDay = None,
        calling_line: str = "",
    ) -> CheckResult:
        """Check one number, hedged when ``config.hedge_delay`` is set.

        With hedging, the request goes to a second target when the first has not
        answered within ``hedge_delay`` seconds; the first answer wins and the other
        call is cancelled. ``result[0]`` is the number's record. The policy
        arguments are :meth:`check`'s; ``consent_day`` is the number's consent day.

        Raises:
            ClientError: as :meth:`check`.
        """
        piece = Piece(0, (number,), ()) if isinstance(number, int) else Piece(0, (), (number,))
        chosen = self.config.lists if lists is None else tuple(lists)
        fields = _fields(policy, decide_at, consent_day, calling_line)
        request = piece.request(
            self.config.region if region is None else region, chosen, policy=fields
        )
        delay = self.config.hedge_delay
        if delay is None or len(self.config.targets) < 2:
            answer, target = self._call("Check", request, timeout)
        else:
            answer, target = self._hedged(request, delay, timeout)
        return self._merge([(piece, answer, target)])

    def _hedged(self, request: pb.CheckRequest, delay: float, timeout: float | None) -> Any:
        deadline = time.monotonic() + (self.config.timeout if timeout is None else timeout)
        waiting = iter(self._order())
        done: queue.Queue[tuple[str, Any]] = queue.Queue()
        pending: dict[str, Any] = {}
        failure: tuple[grpc.RpcError, str] | None = None

        def launch() -> bool:
            target = next(waiting, None)
            if target is None:
                return False
            remaining = max(0.001, deadline - time.monotonic())
            call = self._stubs[target].Check.future(
                request, timeout=remaining, metadata=self._metadata
            )
            pending[target] = call
            call.add_done_callback(lambda finished: done.put((target, finished)))
            return True

        launch()
        try:
            while pending:
                remaining = deadline - time.monotonic()
                try:
                    target, call = done.get(timeout=max(0.0, min(delay, remaining)))
                except queue.Empty:
                    if not launch() and remaining <= 0:
                        break
                    continue
                pending.pop(target, None)
                exc = call.exception()
                if exc is None:
                    return call.result(), target
                failure = (exc, target)
                if exc.code() not in _RETRYABLE and exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise error_from_rpc(exc, target) from None
                if not pending:
                    launch()
        finally:
            for call in pending.values():
                call.cancel()
        if failure is None:
            raise DeadlineExceededError(
                "no target answered within the deadline; raise the timeout",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        raise error_from_rpc(failure[0], failure[1]) from None

    @staticmethod
    def _merge(answered: Sequence[tuple[Piece, Any, str]]) -> CheckResult:
        try:
            return merge(answered)
        except ValueError as exc:
            raise ClientError(str(exc)) from exc

    def record_attempts(
        self,
        e164: Sequence[int],
        times: Sequence[AttemptTime],
        calling_lines: Sequence[str] | str = (),
        *,
        timeout: float | None = None,
    ) -> RecordedAttempts:
        """Record dial attempts for the policies' caps (``RecordAttempts``, scope ``write``).

        Sent in batches of ``max_batch``, in order. A batch is sent again (next target,
        the same backoff as reads) only when its failure proves nothing was written: an
        attempt counts every time it is recorded, so a blind retry would count it twice.

        Args:
            e164: the called numbers, as E.164 integers.
            times: when each was dialed: aware datetimes, or ms since the epoch.
            calling_lines: the caller ID or SIM of each attempt, one for all (a string
                or a one-item sequence), or none.
            timeout: deadline in seconds of each batch, its retries included.

        Returns:
            The count, the last version, and each batch's target and version.

        Raises:
            InvalidRequestError: the arrays are not parallel or a time is naive; or the
                server refused the first batch (an invalid number): nothing was recorded.
            IncompleteWriteError: some attempts were recorded, or may have been; its
                ``recorded``, ``in_doubt`` and ``not_sent`` say which.
            ClientError: the first batch was refused before anything was written.
        """
        return record_attempts(self, e164, times, calling_lines, timeout)

    def check_stream(
        self,
        batches: Iterable[Sequence[int] | Sequence[str]],
        *,
        lists: Sequence[str] | None = None,
        region: str | None = None,
        in_flight: int = 4,
        timeout: float | None = None,
        policy: str = "",
        decide_at: DecideAt | None = None,
        consent_days: Iterable[Sequence[ConsentDay]] | None = None,
        consent_day: ConsentDay = None,
        calling_line: str = "",
    ) -> CheckStream:
        """Check many batches over one CheckStream; one result per batch, in order.

        Nothing is sent until the first result is asked for. The returned iterator's
        ``cancel()`` stops it from another thread.

        Args:
            batches: each a sequence of E.164 integers or of text numbers.
            lists: lists to check; None uses the config's.
            region: default region for national forms; None uses the config's.
            in_flight: requests sent and not yet answered, at most.
            timeout: deadline in seconds of the whole stream; None uses
                ``config.stream_timeout``.
            policy: as :meth:`check`, for every batch.
            decide_at: as :meth:`check`, for every batch.
            consent_days: one sequence per batch (read alongside ``batches``), each
                with one consent day per number, as :meth:`check`'s.
            consent_day: one consent day for every number of every batch.
            calling_line: as :meth:`check`, for every batch.

        Raises:
            ClientError: as :meth:`check`; raised while iterating.
        """
        return CheckStream(
            self,
            batches,
            lists=self.config.lists if lists is None else tuple(lists),
            region=self.config.region if region is None else region,
            in_flight=in_flight,
            timeout=self.config.stream_timeout if timeout is None else timeout,
            policy=_fields(policy, decide_at, consent_day, calling_line),
            consent_days=consent_days,
        )


def _fields(
    policy: str, decide_at: DecideAt | None, consent_day: ConsentDay, calling_line: str
) -> PolicyFields:
    """The policy fields every request of one check carries; refused here if malformed."""
    return PolicyFields(policy, ms_of(decide_at), day_of(consent_day), calling_line)
