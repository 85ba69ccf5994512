"""How current a replica's data is: what every answer reports about itself."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Freshness"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the data is, as the replica sees it; cheap to build per request."""

    stale: bool = False
    """Not confirmed caught up with the change log within --max-staleness."""
    staleness_ms: int = 0
    """Milliseconds since the data was last confirmed caught up."""
    fail_closed: bool = False
    """Answer every valid number SUPPRESSED instead of looking it up."""
