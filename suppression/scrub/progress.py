"""Progress of a scrub: bars with rate and ETA on a terminal, nothing otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich.progress loads only when bars are shown (6 ms of every start-up)
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, TaskID

__all__ = ["ScrubProgress"]


def _rate_column() -> ProgressColumn:
    """A column of items per second."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class _RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")

    return _RateColumn()


class ScrubProgress:
    """Three bars: rows read, distinct numbers checked, rows written.

    Thread-safe: the engines report from their own threads. With
    ``enabled=False`` every call does nothing, so callers never branch.
    """

    def __init__(self, console: Console, enabled: bool) -> None:
        """Create the display; it starts on ``__enter__``."""
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<9}"),
                BarColumn(),
                MofNCompleteColumn(),
                _rate_column(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            for name in ("reading", "checking", "writing"):
                self._tasks[name] = self._progress.add_task(name, total=None)

    def __enter__(self) -> ScrubProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def total(self, name: str, total: int) -> None:
        """Set how many items the bar ``name`` counts to."""
        if self._progress is not None:
            self._progress.update(self._tasks[name], total=total)

    def advance(self, name: str, count: int) -> None:
        """Count ``count`` more items done on the bar ``name``."""
        if self._progress is not None:
            self._progress.advance(self._tasks[name], count)

    def checked(self, count: int) -> None:
        """Engine callback: ``count`` more distinct numbers answered."""
        self.advance("checking", count)
