"""One scrub from start to finish: read, check distinct numbers, sort rows into files, summarize.

Rows are read in chunks; each chunk's phone strings not seen before are
handed to the engine at once, so checking runs while the rest of the file is
still being parsed. Rows are written only after every answer is in, because
a remote answer may still be asked again at a newer data version.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64
from rich.console import Console

from suppression.e164 import Normalizer, validate_region
from suppression.errors import ConfigError
from suppression.scrub.answers import Answers, CheckEngine, distinct_strings
from suppression.scrub.checkpoint import Checkpoint, CheckpointFiles, input_identity
from suppression.scrub.columns import ColumnChoice, check_header, choose_column
from suppression.scrub.data import local_view
from suppression.scrub.fastpath import FastRead, RawBlock, ScanLayout, nanp_region
from suppression.scrub.interrupts import Interrupts, ScrubInterruptedError
from suppression.scrub.local import LocalEngine, Scanned
from suppression.scrub.options import ScrubOptions
from suppression.scrub.outputs import OutputKind, OutputSet, output_paths
from suppression.scrub.progress import ScrubProgress
from suppression.scrub.reading import Chunk, LeadFile, open_lead_file
from suppression.scrub.summary import ScrubSummary
from suppression.scrub.writing import ChunkWriter, Tally, WriteLayout, earliest_text, write_layout

if TYPE_CHECKING:
    from suppression.scrub.policy import ScrubPolicy
    from suppression.scrub.remote import BlockAsked, RemoteEngine

__all__ = ["run_scrub"]

logger = logging.getLogger(__name__)

_SAMPLE_ROWS = 200


def run_scrub(
    options: ScrubOptions,
    source: Path,
    *,
    console: Console | None = None,
    show_progress: bool | None = None,
) -> ScrubSummary:
    """Scrub one lead file and write its outputs beside it (or in ``output_dir``).

    Run from the main thread, it turns SIGINT, SIGTERM and SIGHUP into
    :class:`ScrubInterruptedError` while it runs: the scrub then stops its
    workers, removes its temporary files and writes no output.

    Args:
        options: the scrub's options (region, lists, targets or data, column...).
        source: the CSV or TSV file, plain or ``.gz``.
        console: where progress goes (stderr by default).
        show_progress: force the progress bars on or off; by default they
            show only on a terminal.

    Returns:
        The summary, also written as JSON and as a table beside the outputs.

    Raises:
        SuppressionError: bad options, an unreadable input, a missing
            column, unreachable servers, a signal; every message is one line.
    """
    started = time.perf_counter()
    console = console or Console(stderr=True)
    enabled = console.is_terminal if show_progress is None else show_progress
    with Interrupts() as interrupts:
        try:
            summary = _scrub(options, source, console, enabled, interrupts, started)
        except ScrubInterruptedError as exc:
            resume_line = getattr(exc, "resume_line", 0)
            if not resume_line:
                raise
            raise ScrubInterruptedError(exc.signal, resume_line) from None
    if interrupts.pending is not None:
        logger.warning(
            "%s arrived as the outputs were being put in place; the scrub is complete",
            signal.Signals(interrupts.pending).name,
        )
    logger.info(
        "scrubbed %s rows in %.2f s: %s clean, %s suppressed, %s invalid%s",
        f"{summary.rows_in:,}",
        summary.seconds,
        f"{summary.clean:,}",
        f"{summary.suppressed:,}",
        f"{summary.invalid:,}",
        f", {summary.deferred:,} deferred" if summary.policy else "",
    )
    return summary


def _scrub(
    options: ScrubOptions,
    source: Path,
    console: Console,
    enabled: bool,
    interrupts: Interrupts,
    started: float,
) -> ScrubSummary:
    try:
        region = validate_region(options.region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if options.as_of and options.targets:
        raise ConfigError(
            "--as-of rebuilds the lists from the change archive on this machine: scrub locally "
            "(--data-dir holding archive/, or --archive-dir) instead of --target; programs "
            "elsewhere send CheckRequest.as_of_version"
        )
    if options.no_header and not options.column.isdigit():
        # Without a header, names cannot be matched; content detection still works.
        if options.column:
            raise ConfigError(
                f"--column {options.column!r}: a file without a header (--no-header) takes a "
                "1-based column position"
            )
    with open_lead_file(
        source, options.encoding, options.delimiter, no_header=options.no_header
    ) as lead:
        normalizer = Normalizer(1_000)
        column = choose_column(
            lead.header, lead.sample(_SAMPLE_ROWS), options.column, region, normalizer, str(source)
        )
        if not options.no_header:
            check_header(lead.header, column, region, normalizer, str(source))
        logger.debug("phone column %d (by %s)", column.index + 1, column.detection)
        paths = output_paths(source, options.output_dir, options.compress)
        if source.resolve() in {path.resolve() for path in paths.values()}:
            raise ConfigError(f"{source} would be overwritten by its own output; rename it")
        folder = paths[OutputKind.CLEAN].parent
        files = CheckpointFiles(
            folder, paths[OutputKind.SUMMARY_JSON].name.removesuffix(".summary.json")
        )
        fingerprint = _fingerprint(options, lead, column, region)
        identity = input_identity(source)
        resumed = files.latest() if options.resume else None
        if resumed is not None and (resumed.input != identity or resumed.options != fingerprint):
            logger.warning(
                "the checkpoint is of another input or other options; scrubbing from the start"
            )
            resumed = None
        if options.resume and resumed is None:
            logger.info("no checkpoint to resume from; scrubbing from the start")
        policy = _policy(options, resumed)
        if resumed is None:
            files.remove_stale()
        adopt = None
        if resumed is not None:
            files.take_over(resumed)
            files.remove_partial()
            adopt = {
                OutputKind(kind): ((resumed.pid, resumed.holder), size)
                for kind, size in resumed.sizes.items()
            }
        progress = ScrubProgress(console, enabled)
        with OutputSet(paths, lead.encoding, compress=options.compress, adopt=adopt) as outputs:
            engine = _engine(options, region, lead, progress, policy)
            finished = False
            try:
                kept = _check_version(resumed, engine, files, outputs)
                with progress, _collector_paused():
                    run = _Run(
                        lead, column, engine, outputs, files, progress, options, kept, region
                    )
                    run.policy = policy
                    if resumed is not None and kept is None:
                        run.rechecked_lines = resumed.next_line - 1
                    run.fingerprint, run.identity = fingerprint, identity
                    run.go()
                finished = True
            finally:
                with interrupts.held():  # half-closed engines leave workers and threads behind
                    engine.close()
                if not finished:
                    resume_line = _keep_for_resume(files, outputs)
                    error = sys.exc_info()[1]
                    if resume_line and error is not None:
                        error.resume_line = resume_line  # type: ignore[attr-defined]
                        logger.info("--resume continues from line %s", f"{resume_line:,}")
            interrupts.raise_pending()
            answers = run.answers
            counts = run.tally.summary_counts()
            for name in answers.list_names:
                counts["suppressed_per_list"].setdefault(name, 0)
            seen = run.policy_seen or (
                (policy.resolved, policy.version) if policy is not None else ("", "")
            )
            summary = ScrubSummary(
                input=str(source),
                mode="remote" if options.targets else "local",
                encoding=lead.encoding,
                delimiter=lead.delimiter,
                column=column.name,
                column_detection=column.detection.value,
                region=region,
                lists_checked=answers.list_names,
                data_versions=answers.versions,
                first_data_versions={
                    source_name: version
                    for source_name, version in answers.first_versions.items()
                    if answers.versions.get(source_name) != version
                },
                stale=run.stale,
                failed_closed=run.failed_closed,
                retried_on=answers.retried_on,
                failed_targets=answers.failed_targets,
                resumed_at_line=run.resumed_at_line,
                rechecked_lines=run.rechecked_lines,
                seconds=time.perf_counter() - started,
                outputs={
                    kind.value: str(path)
                    for kind, path in paths.items()
                    if kind is not OutputKind.DEFERRED or outputs.written(kind)
                },
                policy=seen[0],
                policy_version=seen[1],
                decided_at=earliest_text(policy.at_ms) if policy is not None else "",
                **counts,
            )
            outputs.open(OutputKind.SUMMARY_TEXT).write(summary.to_text())
            outputs.open(OutputKind.SUMMARY_JSON).write(summary.to_json())
            outputs.sync()
            # From here on the scrub completes: a signal no longer undoes it.
            interrupts.hold()
            outputs.commit()
            files.remove()
    return summary


def _policy(options: ScrubOptions, resumed: Checkpoint | None) -> ScrubPolicy | None:
    """The policy the rows are decided under (see :func:`~suppression.scrub.policy.scrub_policy`).

    Raises:
        ConfigError: options that do not go together, a bad policy file, or a
            resume under another policy than the interrupted scrub's.
    """
    recorded = resumed.extra.get("policy") if resumed is not None else None
    if not (options.under_policy or options.dated_lists or recorded is not None):
        return None  # the policy code is not even loaded
    from suppression.scrub.policy import scrub_policy

    return scrub_policy(options, resumed is not None, recorded)


def _keep_for_resume(files: CheckpointFiles, outputs: OutputSet) -> int:
    """After a failure or a signal, keep what a ``--resume`` needs, if a chunk was completed.

    Returns:
        The line a resumed scrub would start at; 0 if nothing was kept.
    """
    if files.saved:
        files.close()
        outputs.keep()
        return files.saved_line
    files.remove()
    return 0


def _fingerprint(
    options: ScrubOptions, lead: LeadFile, column: ColumnChoice, region: str
) -> dict[str, Any]:
    """The options that shape the outputs: a checkpoint is only good for the same ones."""
    return {
        "encoding": lead.encoding,
        "delimiter": lead.delimiter,
        "column": column.index,
        "region": region,
        "lists": list(options.lists),
        "targets": sorted(options.targets),
        "no_header": options.no_header,
        "compress": options.compress,
        "dedupe": options.dedupe,
        "chunk_rows": options.chunk_rows,
    }


def _check_version(
    resumed: Checkpoint | None, engine: CheckEngine, files: CheckpointFiles, outputs: OutputSet
) -> Checkpoint | None:
    """Keep a checkpoint only if its data version is still the one the engine answers from.

    A local scrub answers from one version; when the data is newer than the
    interrupted scrub's, every row done before must be checked again, so the
    scrub starts over (and says so). Servers' data moves during any remote
    scrub; there a resumed scrub goes on, as an uninterrupted one would.
    """
    if resumed is None:
        return None
    current = engine.fixed_versions()
    if current is None or current == resumed.versions:
        return resumed
    logger.warning(
        "the data changed since the interrupted scrub (version %s, now %s); checking the "
        "%s lines done before again",
        ", ".join(resumed.versions.values()),
        ", ".join(current.values()),
        f"{resumed.next_line - 1:,}",
    )
    outputs.restart()
    return None


def _since(started: float) -> float:
    return time.perf_counter() - started


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of rows are held.

    Rows are lists of strings and hold no cycles, but each new list counts
    towards a collection, and full collections walk every row: with the
    collector on, reading a million rows takes about twice as long.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _engine(
    options: ScrubOptions,
    region: str,
    lead: LeadFile,
    progress: ScrubProgress,
    policy: ScrubPolicy | None,
) -> CheckEngine:
    if options.targets:
        from suppression.scrub.remote import RemoteEngine  # grpc: a local scrub never loads it

        return RemoteEngine(
            options.targets,
            region,
            options.lists,
            batch_size=options.batch_size,
            timeout=options.timeout,
            progress=progress.checked,
            processes=options.processes,
            expected_rows=lead.rows_estimate,
            policy=(policy.name, policy.at_ms) if policy is not None else None,
        )
    return LocalEngine(
        local_view(options),
        region,
        options.lists,
        cache_size=options.parse_cache_size,
        processes=options.processes,
        batch_size=options.batch_size,
        expected_rows=lead.rows_estimate,
        progress=progress.checked,
        policy=policy,
    )


@dataclass(slots=True)
class _Pending:
    """A chunk read and handed to the engine, not yet written."""

    chunk: Chunk | RawBlock
    start: int = 0
    """The engine's number of its first distinct text phone."""
    count: int = 0
    uids: npt.NDArray[np.int64] | None = None
    scan: Future[Scanned] | None = None
    """Fast path: the block scanned and answered (in a worker)."""
    asked: BlockAsked | None = None
    """Fast path, remote: the block scanned (in a worker) and its numbers asked for."""


class _Run:
    """The chunk loop: read, check, write, checkpoint."""

    def __init__(
        self,
        lead: LeadFile,
        column: ColumnChoice,
        engine: CheckEngine,
        outputs: OutputSet,
        files: CheckpointFiles,
        progress: ScrubProgress,
        options: ScrubOptions,
        resumed: Checkpoint | None,
        region: str,
    ) -> None:
        self.lead = lead
        self.column = column
        self.engine = engine
        self.outputs = outputs
        self.files = files
        self.progress = progress
        self.options = options
        self.region = region
        self.resumed = resumed
        self.tally = Tally()
        self.answers = Answers.empty(0)
        self.stale = False
        self.failed_closed = False
        self.resumed_at_line = 0
        self.rechecked_lines = 0
        self.fingerprint: dict[str, Any] = {}
        self.identity: dict[str, Any] = {}
        self.chunks = 0
        self.first_versions: dict[str, str] = {}
        """Resumed: the versions of the interrupted scrub's first answers."""
        self.policy: ScrubPolicy | None = None
        self.policy_seen: tuple[str, str] | None = None
        """The policy and policy version the answers were decided under."""

    def go(self) -> None:
        lead, resumed = self.lead, self.resumed
        seen = BitMap64()
        if resumed is not None:
            seen = self.files.load_seen(resumed)
            self.first_versions = dict(resumed.extra.get("first_versions", {}))
            self.tally = Tally.from_dict(resumed.tally)
            self.stale = bool(resumed.extra.get("stale"))
            self.failed_closed = bool(resumed.extra.get("failed_closed"))
            self.chunks = resumed.chunks
            seen_policy = resumed.extra.get("policy_seen")
            if seen_policy:
                self.policy_seen = (str(seen_policy[0]), str(seen_policy[1]))
            self.resumed_at_line = resumed.next_line
            lead.skip_to(resumed.next_line)
            logger.info("resuming at line %s", f"{resumed.next_line:,}")
        self.files.start(resumed)
        writer = ChunkWriter(
            lead, self.outputs, seen, dedupe=self.options.dedupe, deferred=self.policy is not None
        )
        progress = self.progress
        progress.total("reading", lead.rows_estimate)
        pending: deque[_Pending] = deque()
        start = 0
        fast = None
        layout: ScanLayout | None = None
        assembly: WriteLayout | None = None
        remote = self._remote()
        local = self.engine if isinstance(self.engine, LocalEngine) else None
        if (local is not None and local.policy is None) or (
            remote is not None and remote.reads_blocks
        ):
            # Under a policy every number goes through the policy's decision, as text.
            fast = FastRead(nanp_region(self.region))
            codec = "utf-8" if lead.encoding == "utf-8-sig" else lead.encoding
            width = len(lead.header)
            layout = (codec, lead.delimiter, width, self.column.index, self.region)
            # Without --dedupe a worker writes a block's rows too; with it, rows depend on
            # every earlier block, so they are sorted out here.
            assembly = None if self.options.dedupe else write_layout(lead)
        for chunk in lead.chunks(self.column.index, self.options.chunk_rows, fast):
            if isinstance(chunk, RawBlock):
                assert layout is not None
                if remote is not None:
                    pending.append(_Pending(chunk, asked=remote.scan(chunk, layout)))
                else:
                    assert local is not None
                    pending.append(_Pending(chunk, scan=local.scan(chunk, layout, assembly)))
            else:
                uids, fresh = distinct_strings(chunk.phones)
                if fresh:
                    self.engine.submit(start, fresh)
                pending.append(_Pending(chunk, start, len(fresh), uids))
                start += len(fresh)
                progress.advance("reading", len(chunk.rows) + chunk.blank_lines)
            # Two blocks in the workers while the oldest is written: both cores stay busy.
            if len(pending) > 2:
                self._write(writer, pending.popleft())
        while pending:
            self._write(writer, pending.popleft())
        self.engine.end()
        final = self.engine.take(start, 0)
        self._note(final)
        progress.total("reading", self.tally.rows_in + self.tally.blank_lines)

    def _remote(self) -> RemoteEngine | None:
        """The engine, if remote (its module, and grpc, are not loaded for a local scrub)."""
        if isinstance(self.engine, LocalEngine):
            return None
        from suppression.scrub.remote import RemoteEngine

        return self.engine if isinstance(self.engine, RemoteEngine) else None

    def _note(self, answers: Answers) -> None:
        if answers.policy:
            seen = (answers.policy, answers.policy_version)
            if self.policy_seen is None:
                self.policy_seen = seen
            elif seen != self.policy_seen:
                raise ConfigError(
                    f"rows were decided under policy {self.policy_seen[0]} version "
                    f"{self.policy_seen[1]}, then under {seen[0]} version {seen[1]}: the "
                    "policy file changed during the scrub (or since the interrupted one); "
                    "scrub the file again"
                )
        for source_name, version in self.first_versions.items():
            answers.first_versions[source_name] = version
        self.stale |= answers.stale
        self.failed_closed |= answers.failed_closed
        names = self.answers.list_names
        self.answers = answers
        if len(names) > len(answers.list_names):
            answers.list_names = names

    def _write_asked(
        self, writer: ChunkWriter, block: RawBlock, asked: BlockAsked
    ) -> tuple[int, npt.NDArray[np.uint64], Answers]:
        """Write a block remote mode scanned, once its servers answered its numbers."""
        from suppression.scrub.remotescan import read_answers

        remote = self._remote()
        assert remote is not None
        scanned, answers = remote.take_block(asked)
        self._note(answers)
        chunk = scanned.chunk
        chunk.data = block.data
        texts, masks_read, read, distinct = read_answers(scanned, answers)
        fresh = writer.write_fast(
            chunk, scanned.uids, texts, masks_read, self.tally, read, distinct
        )
        self.progress.advance("reading", chunk.rows + chunk.blank_lines)
        self.progress.advance("writing", chunk.rows)
        return chunk.next_line, fresh, answers

    def _write(self, writer: ChunkWriter, item: _Pending) -> None:
        chunk = item.chunk
        if item.asked is not None:
            assert isinstance(chunk, RawBlock)
            next_line, fresh, answers = self._write_asked(writer, chunk, item.asked)
        elif isinstance(chunk, RawBlock):
            assert item.scan is not None and isinstance(self.engine, LocalEngine)
            scanned, masks, uids, texts, result, block = self.engine.scanned(item.scan)
            scanned.data = chunk.data
            answers = self.engine.answers(result)
            self._note(answers)
            self.progress.advance("checking", len(texts))
            if block is not None:
                rows = block.rows
                fresh = writer.write_assembled(block, self.tally)
            else:
                rows = scanned.rows
                fresh = writer.write_fast(scanned, uids, answers, masks, self.tally)
            self.progress.advance("reading", rows + scanned.blank_lines)
            self.progress.advance("writing", rows)
            next_line = scanned.next_line
            self.engine.release(item.scan)
        else:
            assert item.uids is not None
            answers = self.engine.take(item.start, item.count)
            self._note(answers)
            fresh = writer.write(chunk, item.uids, answers, self.tally)
            self.progress.advance("writing", len(chunk.rows))
            next_line = chunk.first_line + len(chunk.text)
        self.files.add_seen(fresh)
        self.chunks += 1
        sizes = self.outputs.mark()
        self.files.save(
            Checkpoint(
                pid=os.getpid(),
                input=self.identity,
                options=self.fingerprint,
                versions=dict(answers.versions),
                next_line=next_line,
                chunks=self.chunks,
                sizes={kind.value: size for kind, size in sizes.items()},
                seen_bytes=0,
                tally=self.tally.to_dict(),
                extra={
                    "first_versions": answers.first_versions,
                    "stale": self.stale,
                    "failed_closed": self.failed_closed,
                    "policy": self.policy.record() if self.policy is not None else None,
                    "policy_seen": list(self.policy_seen) if self.policy_seen else None,
                },
            )
        )
