"""The local engine: answers a scrub in this machine's processes, against lists loaded here.

Every batch goes through :func:`suppression.checker.check_batch`, the same
function the server's Check runs, so a local scrub and a remote one give the
same answers for the same data; both first turn plain punctuated numbers
into canonical text (:mod:`suppression.scrub.shortcut`). Parsing the other
loose forms costs 15-35 µs each, so distinct strings are spread over a pool
of worker processes (:mod:`suppression.scrub.pool`). The pool is forked after
the lists are loaded and before any thread starts: the workers share the
bitmaps copy-on-write and load nothing themselves.

Under a pre-dial policy (``--policy-file``) every batch goes through
:func:`suppression.policy.batch.check_with_policy` instead, with the
arguments the Replica gives it for the server's Check, and the fast path is
not taken: it looks numbers up on the lists alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from suppression.checker import CheckOutcome, check_batch
from suppression.e164 import Normalizer
from suppression.lists import ListView
from suppression.scrub.answers import Answers, Progress, distinct_strings
from suppression.scrub.blocks import BLOCK_BYTES
from suppression.scrub.distinct import distinct_with_inverse
from suppression.scrub.fastpath import FastChunk, RawBlock, ScanLayout, scan_block
from suppression.scrub.pool import pool_for
from suppression.scrub.shortcut import canonicalize
from suppression.scrub.slots import SharedSlots, SlotRef
from suppression.scrub.writing import BlockOutputs, WriteLayout, assemble

if TYPE_CHECKING:
    from suppression.scrub.policy import ScrubPolicy

__all__ = ["LocalEngine", "Scanned"]

logger = logging.getLogger(__name__)

_Result = tuple[list[int], list[int], dict[int, int], list[int]]
_Extra = tuple[list[int], list[int], tuple[str, ...], str, str]
"""Under a policy: earliest times (ms), rules, rule names, the policy and its version."""
_Answered = tuple[_Result, _Extra | None]


# The worker processes' state, inherited through fork (never pickled).
_worker_view: ListView | None = None
_worker_region = ""
_worker_lists: tuple[str, ...] = ()
_worker_normalizer: Normalizer | None = None
_worker_policy: ScrubPolicy | None = None
_worker_slots: SharedSlots | None = None

_SLOT_BYTES = 2 * BLOCK_BYTES
"""Room for a block, and for its outputs, in a shared slot; larger ones go through the pipe."""


def _init_worker(
    view: ListView,
    region: str,
    lists: tuple[str, ...],
    cache_size: int,
    policy: ScrubPolicy | None = None,
    slots: SharedSlots | None = None,
) -> None:
    global _worker_view, _worker_region, _worker_lists, _worker_normalizer, _worker_policy
    global _worker_slots
    _worker_view, _worker_region, _worker_lists = view, region, lists
    _worker_normalizer = Normalizer(cache_size)
    _worker_policy = policy
    _worker_slots = slots


def _outcome_tuple(outcome: CheckOutcome) -> _Result:
    return outcome.verdicts, outcome.masks, outcome.invalid_reasons, outcome.normalized


def _check(
    view: ListView,
    texts: list[str],
    region: str,
    lists: tuple[str, ...],
    normalizer: Normalizer | None,
    policy: ScrubPolicy | None,
) -> _Answered:
    """Check a batch of distinct strings, on the lists alone or under the scrub's policy."""
    shortened = canonicalize(texts, region)
    if policy is None:
        return _outcome_tuple(check_batch(view, (), shortened, region, lists, normalizer)), None
    # Imported here: a scrub without a policy never loads the policy code.
    from suppression.policy.batch import check_with_policy

    served = policy.served
    assert served is not None
    # The arguments Replica.check gives it for the server's Check and CheckStream.
    outcome = check_with_policy(
        view,
        served.policies,
        policy.request,
        (),
        shortened,
        region,
        normalizer,
        lists=lists,
        dated=served.dated,
        attempts=view.attempts,
    )
    answer = outcome.policy
    assert answer is not None
    extra = (answer.earliest_ms, answer.rules, answer.rule_names, answer.policy, answer.version)
    return _outcome_tuple(outcome), extra


def _check_in_worker(texts: list[str]) -> _Answered:
    assert _worker_view is not None
    return _check(
        _worker_view, texts, _worker_region, _worker_lists, _worker_normalizer, _worker_policy
    )


Scanned = tuple[
    FastChunk,
    npt.NDArray[np.uint64],
    npt.NDArray[np.int64],
    list[str],
    _Result,
    BlockOutputs | None,
]
"""A scanned block (without its bytes), the lists its numbers are on, per text phone its
index among the distinct ones, those phones, their answers, and (when asked for) the
block's outputs, assembled."""


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_MASKS = np.zeros(0, dtype=np.uint64)


_Task = tuple[bytes | SlotRef, int, ScanLayout, WriteLayout | None]
"""A block (or where it is in a shared slot), its first line, and how to scan and write it."""


def _scan(
    task: _Task,
    view: ListView,
    region: str,
    lists: tuple[str, ...],
    normalizer: Normalizer,
    slots: SharedSlots | None = None,
) -> Scanned:
    """Scan a block and answer all of it: numbers read by numpy, and the text phones.

    A block in a shared slot gets its outputs put in the same slot's output area.
    """
    given, first_line, layout, writing = task
    slot = None
    if isinstance(given, SlotRef):
        assert slots is not None
        slot, data = given.slot, slots.read(given)
    else:
        data = given
    chunk = scan_block(data, first_line, *layout, checked=True)  # the reader checked fits()
    if chunk is None:  # the reader checked fits(); this is a bug
        raise RuntimeError("a block the fast path took was refused by it")
    # Looked up once each, in order: a bitmap answers sorted numbers about 3x faster.
    distinct, inverse = distinct_with_inverse(chunk.values[chunk.values != 0])
    _, distinct_masks = view.lookup(distinct, lists)
    masks = distinct_masks[inverse]
    uids, texts = distinct_strings(chunk.texts)
    outcome = check_batch(view, (), canonicalize(texts, region), region, lists, normalizer)
    result = _outcome_tuple(outcome)
    block = None
    if writing is not None:
        answers = Answers.empty(len(texts))
        answers.list_names = outcome.list_names
        answers.fill(0, *result)
        block = assemble(chunk, uids, answers, masks, writing)
        if slot is not None:
            assert slots is not None
            _to_slot(block, slots, slot)
        # The caller needs only the block's place in the file now: send no per-row arrays.
        chunk = dataclasses.replace(
            chunk,
            starts=_EMPTY,
            bodies=_EMPTY,
            ends=_EMPTY,
            lines=_EMPTY,
            problems=_EMPTY,
            values=_EMPTY_MASKS,
            reasons=np.zeros(0, dtype=np.uint8),
            text_at=_EMPTY,
            texts=[],
            rewritten={},
        )
        masks, uids = _EMPTY_MASKS, _EMPTY
    chunk.data = b""  # the caller has it; do not send it back
    return chunk, masks, uids, texts, result, block


def _to_slot(block: BlockOutputs, slots: SharedSlots, slot: int) -> None:
    """Move the block's outputs to ``slot``'s output area, each that fits."""
    offset = 0
    for kind, data in block.data.items():
        if not data:
            continue
        ref = slots.put_output(slot, offset, data)
        if ref is not None:
            block.in_slot[kind] = ref
            block.data[kind] = b""
            offset += len(data)


def _scan_in_worker(task: _Task) -> Scanned:
    assert _worker_view is not None and _worker_normalizer is not None
    return _scan(
        task, _worker_view, _worker_region, _worker_lists, _worker_normalizer, _worker_slots
    )


class LocalEngine:
    """Checks distinct phone strings against a :class:`ListView` in this process or a pool."""

    def __init__(
        self,
        view: ListView,
        region: str,
        lists: Sequence[str],
        *,
        cache_size: int = 200_000,
        processes: int = 0,
        batch_size: int = 10_000,
        expected_rows: int = 0,
        progress: Progress | None = None,
        policy: ScrubPolicy | None = None,
        slot_bytes: int = _SLOT_BYTES,
    ) -> None:
        """Create the engine; forks the pool at once when one is worth having.

        Args:
            view: the data; every answer comes from this one version.
            region: validated default region, or "".
            lists: lists to check; empty means the view's default lists.
            cache_size: parse cache per process.
            processes: worker processes; 0 means one per core, 1 means none.
            batch_size: strings per batch handed to a worker.
            expected_rows: rough size of the job, to decide whether to fork.
            progress: told how many strings each finished batch answered.
            policy: decide under this policy (local, with its file); None: lists alone.
            slot_bytes: room for a block, and for its outputs, in each shared slot.

        Raises:
            UnknownListError: a named list does not exist (or a list the policy reads).
            WorkerError: the worker processes could not be forked.
        """
        self._list_names, _ = view.select(lists)  # fail before any work on a bad name
        self._policy = policy
        if policy is not None:
            assert policy.served is not None
            suppress = policy.served.policies.get(policy.name).suppress
            self._list_names, _ = view.select(suppress)
            from suppression.policy.prefixes import zone_table

            zone_table()  # built once here, before the fork: the workers share it
        self._view = view
        self._region = region
        self._lists = tuple(lists)
        self._normalizer = Normalizer(cache_size)
        self._batch_size = max(1, batch_size)
        self._progress = progress
        self._pending: deque[tuple[int, Future[_Answered] | _Answered]] = deque()
        # Made before the fork, so the workers share it: room for the blocks in the workers
        # and those waiting to be written (the job keeps three at a time), and one spare.
        count = (processes or os.cpu_count() or 1) + 2
        self._slots: SharedSlots | None = SharedSlots(count, slot_bytes, slot_bytes)
        self._slot_of: dict[Future[Scanned], int] = {}
        self._pool = pool_for(
            processes,
            expected_rows,
            functools.partial(
                _init_worker, view, region, self._lists, cache_size, policy, self._slots
            ),
            name="scrub-check",
        )
        if self._pool is None or policy is not None:  # no worker scans a block
            self._slots.close()
            self._slots = None

    @property
    def policy(self) -> ScrubPolicy | None:
        """The policy every row is decided under; None: the lists alone (and the fast path)."""
        return self._policy

    def submit(self, start: int, texts: list[str]) -> None:
        """Check ``texts`` (strings ``start`` onwards), in the pool when there is one.

        Raises:
            WorkerError: a worker process died (killed, or out of memory).
        """
        for offset in range(0, len(texts), self._batch_size):
            batch = texts[offset : offset + self._batch_size]
            if self._pool is not None:
                future = self._pool.submit(_check_in_worker, batch)
                if self._progress is not None:
                    future.add_done_callback(functools.partial(self._done, len(batch)))
                self._pending.append((start + offset, future))
            else:
                answered = _check(
                    self._view, batch, self._region, self._lists, self._normalizer, self._policy
                )
                self._pending.append((start + offset, answered))
                if self._progress is not None:
                    self._progress(len(batch))

    def _done(self, size: int, future: Future[_Answered]) -> None:
        if self._progress is not None and not future.cancelled() and future.exception() is None:
            self._progress(size)

    def take(self, start: int, count: int) -> Answers:
        """Collect the answers of strings ``start`` to ``start + count - 1``.

        Raises:
            WorkerError: a worker process died (killed, or out of memory).
        """
        answers = Answers.empty(count)
        answers.list_names = self._list_names
        answers.versions = {"local": str(self._view.version)}
        answers.first_versions = dict(answers.versions)
        pending = self._pending
        end = start + count
        while pending and pending[0][0] < end:
            at, waiting = pending.popleft()
            result, extra = waiting.result() if isinstance(waiting, Future) else waiting
            verdicts, masks, reasons, values = result
            answers.fill(at - start, verdicts, masks, reasons, values)
            if extra is not None:
                earliest, rules, rule_names, answers.policy, answers.policy_version = extra
                answers.fill_policy(at - start, len(verdicts), earliest, rules, rule_names)
        if self._policy is not None and not answers.policy:  # a chunk with no new string
            answers.policy = self._policy.resolved
            answers.policy_version = self._policy.version
        return answers

    def scan(
        self, block: RawBlock, layout: ScanLayout, writing: WriteLayout | None = None
    ) -> Future[Scanned]:
        """Scan ``block`` and check all its rows, in a worker process when there is a pool.

        Numbers the fast path reads are looked up as
        :func:`suppression.checker.check_batch` looks them up; the other phones
        are checked by it, after the shortcut, as :meth:`submit` does. With
        ``writing``, the block's outputs are assembled there too.

        Raises:
            WorkerError: the pool is broken.
        """
        if self._pool is not None:
            slots = self._slots
            slot = slots.acquire() if slots is not None else None
            ref = None
            if slot is not None:
                assert slots is not None
                ref = slots.put_input(slot, block.data)
                if ref is None:
                    slots.release(slot)
                    slot = None
            sent: _Task = (block.data if ref is None else ref, block.first_line, layout, writing)
            future = self._pool.submit(_scan_in_worker, sent)
            if slot is not None:
                self._slot_of[future] = slot
            return future
        task: _Task = (block.data, block.first_line, layout, writing)
        done: Future[Scanned] = Future()
        done.set_result(_scan(task, self._view, self._region, self._lists, self._normalizer))
        return done

    def scanned(self, future: Future[Scanned]) -> Scanned:
        """A scan's result, its outputs in a shared slot shown where they are (not copied).

        Call :meth:`release` once they are written.

        Raises:
            WorkerError: the worker died, or the scan failed in it.
        """
        result = future.result()
        block = result[5]
        if block is not None and block.in_slot:
            assert self._slots is not None
            for kind, ref in block.in_slot.items():
                block.data[kind] = self._slots.view(ref)
            block.in_slot = {}
        return result

    def release(self, future: Future[Scanned]) -> None:
        """The scan's outputs are written: its shared slot may take another block."""
        slot = self._slot_of.pop(future, None)
        if slot is not None and self._slots is not None:
            self._slots.release(slot)

    def answers(self, result: _Result) -> Answers:
        """A scanned block's text answers, as :meth:`take` gives them."""
        verdicts, masks, reasons, values = result
        answers = Answers.empty(len(verdicts))
        answers.list_names = self._list_names
        answers.versions = {"local": str(self._view.version)}
        answers.first_versions = dict(answers.versions)
        answers.fill(0, verdicts, masks, reasons, values)
        return answers

    def fixed_versions(self) -> dict[str, str] | None:
        """The loaded data's version: it does not move during the scrub."""
        return {"local": str(self._view.version)}

    def end(self) -> None:
        """Nothing to do: the workers stop in :meth:`close`."""

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._slots is not None:
            self._slots.close()
            self._slots = None
