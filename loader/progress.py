"""Progress bars for long loader work; silent when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ReadProgress", "progress", "read_progress"]

ReadProgress = Callable[[int, int], None]
"""``report(size, numbers)``: ``size`` more bytes of input read, holding ``numbers`` numbers."""


@contextmanager
def progress(
    description: str, total: int | None, console: Console | None = None
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr counting items; yields ``advance(amount)``.

    Args:
        description: what is being done.
        total: the amount of work, or None when unknown.
        console: where to draw; stderr when None.
    """
    columns = (MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with _bar(description, total, columns, console) as bar:
        if bar is None:
            yield _ignore
            return
        progress_bar, task = bar

        def advance(amount: int) -> None:
            progress_bar.advance(task, amount)

        yield advance


@contextmanager
def read_progress(total_bytes: int, console: Console | None = None) -> Iterator[ReadProgress]:
    """A progress bar for reading number files: bytes done of ``total_bytes``, and numbers.

    A file is read in pieces, so one large registry file moves the bar as it
    goes rather than once at its end.

    Args:
        total_bytes: the size of every input file, as stored (compressed or not).
        console: where to draw; stderr when None.
    """
    columns = (
        DownloadColumn(),
        TextColumn("{task.fields[numbers]:,} numbers"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with _bar("reading", total_bytes, columns, console, numbers=0) as bar:
        if bar is None:
            yield _ignore_read
            return
        progress_bar, task = bar
        counted = 0

        def report(size: int, numbers: int) -> None:
            nonlocal counted
            counted += numbers
            progress_bar.update(task, advance=size, numbers=counted)

        yield report


@contextmanager
def _bar(
    description: str,
    total: int | None,
    columns: tuple[ProgressColumn, ...],
    console: Console | None,
    numbers: int | None = None,
) -> Iterator[tuple[Progress, TaskID] | None]:
    console = console if console is not None else Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    head = (TextColumn("[progress.description]{task.description}"), BarColumn())
    with Progress(*head, *columns, console=console, transient=False) as bar:
        fields: dict[str, Any] = {} if numbers is None else {"numbers": numbers}
        yield bar, bar.add_task(description, total=total, **fields)


def _ignore(_amount: int) -> None:
    return None


def _ignore_read(_size: int, _numbers: int) -> None:
    return None
