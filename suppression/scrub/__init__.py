"""Batch scrubbing of lead files: ``suppression scrub INPUT``.

Reads a CSV or TSV lead file, checks every row's phone number locally or
against servers, and writes clean, suppressed and invalid files plus a
summary whose counts add up. See ``docs/scrub.md``.
"""

import os

# Before numpy loads (the scrub is the first to import it): the scrub does no linear algebra,
# and OpenBLAS's worker thread spins for about 0.1 s of CPU after it starts, a third of a
# small scrub's start-up. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from suppression.scrub.interrupts import ScrubInterruptedError  # noqa: E402
from suppression.scrub.job import run_scrub  # noqa: E402
from suppression.scrub.options import ScrubOptions  # noqa: E402
from suppression.scrub.summary import ScrubSummary  # noqa: E402

__all__ = ["ScrubInterruptedError", "ScrubOptions", "ScrubSummary", "run_scrub"]
