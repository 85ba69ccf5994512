"""One scrub from start to finish: read, check distinct numbers, sort rows into files, summarize.

Rows are read in chunks; each chunk's phone strings not seen before are
handed to the engine at once, so checking runs while the rest of the file is
still being parsed. Rows are written only after every answer is in, because
a remote answer may still be asked again at a newer data version.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console

from suppression.e164 import Normalizer, validate_region
from suppression.errors import ConfigError
from suppression.scrub.answers import CheckEngine
from suppression.scrub.columns import ColumnChoice, check_header, choose_column
from suppression.scrub.data import local_view
from suppression.scrub.interrupts import Interrupts
from suppression.scrub.local import LocalEngine
from suppression.scrub.options import ScrubOptions
from suppression.scrub.outputs import OutputKind, OutputSet, output_paths
from suppression.scrub.progress import ScrubProgress
from suppression.scrub.reading import LeadFile, open_lead_file
from suppression.scrub.remote import RemoteEngine
from suppression.scrub.summary import ScrubSummary
from suppression.scrub.writing import RowTable, write_outputs

__all__ = ["run_scrub"]

logger = logging.getLogger(__name__)

_SAMPLE_ROWS = 200
_CHUNK_ROWS = 50_000


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
        summary = _scrub(options, source, console, enabled, interrupts, started)
    if interrupts.pending is not None:
        logger.warning(
            "%s arrived as the outputs were being put in place; the scrub is complete",
            signal.Signals(interrupts.pending).name,
        )
    logger.info(
        "scrubbed %s rows in %.2f s: %s clean, %s suppressed, %s invalid",
        f"{summary.rows_in:,}",
        summary.seconds,
        f"{summary.clean:,}",
        f"{summary.suppressed:,}",
        f"{summary.invalid:,}",
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
    lead = open_lead_file(source, options.encoding, options.delimiter)
    normalizer = Normalizer(1_000)
    column = choose_column(
        lead.header, lead.sample(_SAMPLE_ROWS), options.column, region, normalizer, str(source)
    )
    check_header(lead.header, column, region, normalizer, str(source))
    logger.debug("phone column %d (by %s)", column.index + 1, column.detection)
    paths = output_paths(source, options.output_dir)
    if source.resolve() in {path.resolve() for path in paths.values()}:
        raise ConfigError(f"{source} would be overwritten by its own output; rename it")
    progress = ScrubProgress(console, enabled)
    with OutputSet(paths, lead.encoding) as outputs, _collector_paused():
        engine = _engine(options, region, lead, progress)
        try:
            with progress:
                read = _read(lead, column, engine, progress)
                logger.debug("read %s rows at %.2f s", f"{len(read.rows):,}", _since(started))
                progress.total("checking", read.distinct)
                answers = engine.finish(read.distinct)
                logger.debug("checked %s strings at %.2f s", f"{read.distinct:,}", _since(started))
                counts = write_outputs(lead, read, answers, outputs, progress)
                logger.debug("wrote the outputs at %.2f s", _since(started))
        finally:
            with interrupts.held():  # half-closed engines leave workers and threads behind
                engine.close()
        interrupts.raise_pending()
        summary = ScrubSummary(
            input=str(source),
            mode="remote" if options.targets else "local",
            encoding=lead.encoding,
            delimiter=lead.delimiter,
            column=column.name,
            column_detection=column.detection.value,
            region=region,
            blank_lines=read.blank_lines,
            lists_checked=answers.list_names,
            data_versions=answers.versions,
            stale=answers.stale,
            failed_closed=answers.failed_closed,
            retried_on=answers.retried_on,
            failed_targets=answers.failed_targets,
            seconds=time.perf_counter() - started,
            outputs={kind.value: str(path) for kind, path in paths.items()},
            **counts,
        )
        outputs.open(OutputKind.SUMMARY_TEXT).write(summary.to_text())
        outputs.open(OutputKind.SUMMARY_JSON).write(summary.to_json())
        outputs.sync()
        # From here on the scrub completes: a signal no longer undoes it.
        interrupts.hold()
        outputs.commit()
    return summary


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
    options: ScrubOptions, region: str, lead: LeadFile, progress: ScrubProgress
) -> CheckEngine:
    if options.targets:
        return RemoteEngine(
            options.targets,
            region,
            options.lists,
            batch_size=options.batch_size,
            timeout=options.timeout,
            progress=progress.checked,
            processes=options.processes,
            expected_rows=lead.line_count,
        )
    return LocalEngine(
        local_view(options),
        region,
        options.lists,
        cache_size=options.parse_cache_size,
        processes=options.processes,
        batch_size=options.batch_size,
        expected_rows=lead.line_count,
        progress=progress.checked,
    )


def _read(
    lead: LeadFile, column: ColumnChoice, engine: CheckEngine, progress: ScrubProgress
) -> RowTable:
    """Read every row and hand each chunk's new distinct phone strings to the engine."""
    read = RowTable()
    progress.total("reading", lead.line_count - lead.header_line)
    # Each distinct string gets an id from a counter, so one C-level map call per chunk
    # finds or assigns ids (duplicates skip counter values; the order of first sight
    # is restored below). Id 0 is "", the phone of every row with a problem: never checked.
    index: dict[str, int] = {"": 0}
    ids = itertools.count(1)
    setdefault = index.setdefault
    found: list[int] = []
    for chunk in lead.chunks(column.index, _CHUNK_ROWS):
        start = len(index)
        found += map(setdefault, chunk.phones, ids)
        if chunk.spans:
            base = len(read.rows)
            read.spans.update({base + at: span for at, span in chunk.spans.items()})
        if len(index) > start:
            # Keys keep insertion order, so this chunk's new strings are the newest keys.
            fresh = list(itertools.islice(reversed(index.keys()), len(index) - start))[::-1]
            engine.submit(start - 1, fresh)
        read.rows += chunk.rows
        read.lines += chunk.lines
        read.problems += chunk.problems
        read.blank_lines += chunk.blank_lines
        progress.advance("reading", len(chunk.rows) + chunk.blank_lines)
    progress.total("reading", len(read.rows) + read.blank_lines)  # rows may span lines
    read.distinct = len(index) - 1
    first_seen = np.fromiter(index.values(), dtype=np.int64, count=len(index))
    read.uids = np.searchsorted(first_seen, np.array(found, dtype=np.int64)).tolist()
    return read
