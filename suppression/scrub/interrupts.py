"""Stopping a scrub on SIGINT, SIGTERM or SIGHUP: one exception, raised where it cleans up.

Ctrl-C, ``kill`` and a closed terminal all become :class:`ScrubInterruptedError`
in the main thread, a :class:`SuppressionError` with a one-line message, so
the scrub unwinds through the code that removes its temporary files and kills
its workers, and the command exits 2. After the first signal, later ones are
ignored until the scrub has cleaned up: a second Ctrl-C must not leave
``.partial`` files behind. A block run under :meth:`Interrupts.held` (closing
the engine, renaming the outputs into place) is never cut in half.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from suppression.errors import SuppressionError

__all__ = ["STOP_SIGNALS", "Interrupts", "ScrubInterruptedError", "signals_held"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
"""Signals that stop a scrub; the scrub's process handles them, its workers ignore them."""


class ScrubInterruptedError(SuppressionError):
    """The scrub was stopped by a signal; it wrote no output."""

    def __init__(self, number: int, resume_line: int = 0) -> None:
        """Name the signal in the message, and the line a ``--resume`` would continue from."""
        name = signal.Signals(number).name
        message = f"scrub interrupted by {name}; no output was written"
        if resume_line:
            message += f"; run it again with --resume to continue from line {resume_line:,}"
        super().__init__(message)
        self.signal = number


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold :data:`STOP_SIGNALS` in this thread for the block; they arrive when it ends.

    Forking inside the block gives children that start with the signals held,
    so none of them runs the parent's handlers before it has set its own.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class Interrupts:
    """While active, turns :data:`STOP_SIGNALS` into :class:`ScrubInterruptedError`.

    Only the main thread can set signal handlers; elsewhere (a scrub run from a
    worker thread of some application) this does nothing, and the signals keep
    whatever handlers the application set.
    """

    def __init__(self) -> None:
        """Prepare; the handlers are set on ``__enter__``."""
        self._previous: dict[int, Any] = {}
        self._raised = False
        self._holding = False
        self._final = False
        self.pending: int | None = None
        """A signal that arrived while held, or after the first one."""

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self._raised or self._holding:
            self.pending = self.pending or number
            return
        self._raised = True
        logger.debug("received %s", signal.Signals(number).name)
        raise ScrubInterruptedError(number)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Run the block whole: a signal that arrives in it is kept in :attr:`pending`.

        Call :meth:`raise_pending` after it to act on that signal.
        """
        holding, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = holding

    def hold(self) -> None:
        """Hold every later signal in :attr:`pending`: the scrub is past undoing."""
        self._holding = self._final = True

    def raise_pending(self) -> None:
        """Raise :class:`ScrubInterruptedError` for a signal held back, if one was.

        Nothing is raised after :meth:`hold`.

        Raises:
            ScrubInterruptedError: a signal arrived during a held block.
        """
        if self.pending is not None and not (self._raised or self._final):
            self._raised = True
            raise ScrubInterruptedError(self.pending)
