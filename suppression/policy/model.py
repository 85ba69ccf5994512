"""What a policy says, as frozen values: lists, exemptions, calling windows, caps, number types.

Pure data; :mod:`suppression.policy.parse` builds it from TOML and checks
every rule, :mod:`suppression.policy.decide` applies it to a batch. Times are
UTC seconds since the epoch and days are days since 1970-01-01, so that the
decision works on integer arrays.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "Cap",
    "CapScope",
    "Exemption",
    "ListRole",
    "NoData",
    "NumberTypeRules",
    "Policy",
    "PolicySet",
    "Reassigned",
    "Window",
    "WindowRule",
]


class ListRole(enum.StrEnum):
    """What a list named in a policy file is for; the file declares it once per list."""

    REGISTRY = "registry"
    """A national do-not-call registry: may be lifted by an exemption."""
    OPT_OUT = "opt_out"
    """The company's own refusals: nothing ever lifts it."""
    CAMPAIGN = "campaign"
    """A per-campaign or per-tenant list: may be lifted by an exemption."""
    EXEMPTION = "exemption"
    """Consent or a business relationship, with the day it was recorded."""
    REASSIGNED = "reassigned"
    """Numbers disconnected (and maybe reassigned since), with the disconnect day."""


LIFTABLE = frozenset({ListRole.REGISTRY, ListRole.CAMPAIGN})
"""The roles an exemption may lift. Never OPT_OUT: a refusal ends only by a removal."""


@dataclass(frozen=True, slots=True)
class Exemption:
    """An exemption list that lifts some suppression lists for a while after its recorded day.

    The exemption holds on days ``day <= today < expiry`` where ``expiry`` is
    the recorded day plus ``days`` or plus ``months`` calendar months (the
    day of month clipped to the month's end); with neither it holds until the
    number leaves the list (consent revoked).
    """

    name: str
    list_name: str
    lifts: tuple[str, ...]
    days: int = 0
    months: int = 0


@dataclass(frozen=True, slots=True)
class WindowRule:
    """Local wall-clock hours on allowed weekdays, minus quiet days.

    A moment is inside the window when the called person's wall clock reads
    ``start <= time < end`` on an allowed weekday that is not a quiet day.
    Defined on the wall clock, this handles daylight saving without special
    cases: an hour that does not exist is never inside, an hour that happens
    twice is inside both times if its reading is.
    """

    start_minute: int
    end_minute: int
    weekdays: frozenset[int] = frozenset(range(7))
    """0 is Monday, as ``date.weekday()``."""
    quiet_days: frozenset[int] = frozenset()
    """Local dates (days since 1970-01-01) on which nobody is called."""


@dataclass(frozen=True, slots=True)
class Window:
    """The calling window of a policy, with overrides by number prefix and by zone.

    A prefix override (longest prefix wins) replaces the rule for the numbers
    it covers; otherwise a zone override replaces it inside that zone. A
    number whose zone is unknown is SUPPRESSED unless ``unknown_zones`` names
    the zones to assume (the window must then hold in all of them).
    """

    rule: WindowRule
    prefixes: tuple[tuple[str, WindowRule], ...] = ()
    """Digits of the E.164 prefix (no "+") and the rule for numbers that start with them."""
    zones: tuple[tuple[str, WindowRule], ...] = ()
    unknown_zones: tuple[str, ...] = ()


class CapScope(enum.StrEnum):
    """What an attempt cap counts."""

    NUMBER = "number"
    """Attempts to the called number."""
    LINE = "line"
    """Attempts from the calling line (caller ID or SIM) the request names."""


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` attempts in any ``seconds`` (one at ``t - seconds`` no longer counts)."""

    scope: CapScope
    limit: int
    seconds: int

    @property
    def name(self) -> str:
        """The rule name reported with a deferral."""
        return f"cap.{self.scope}.{self.limit}_per_{self.seconds}s"


class NoData(enum.StrEnum):
    """What to do when a consent date is older than the reassigned-number data."""

    SUPPRESS = "suppress"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class Reassigned:
    """The reassigned-number check: disconnected on or after the consent day means do not dial."""

    list_name: str
    data_begins: int
    """The first day the data covers: an older consent day gets "no data"."""
    no_data: NoData = NoData.SUPPRESS


@dataclass(frozen=True, slots=True)
class NumberTypeRules:
    """Number types that are blocked, or that need a number on a consent list."""

    block: frozenset[str] = frozenset()
    need_consent: frozenset[str] = frozenset()
    consent_lists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """One named policy."""

    name: str
    suppress: tuple[str, ...]
    exemptions: tuple[Exemption, ...] = ()
    window: Window | None = None
    caps: tuple[Cap, ...] = ()
    reassigned: Reassigned | None = None
    number_types: NumberTypeRules = NumberTypeRules()
    date_zone: str = "UTC"
    """The zone whose calendar decides "today" for exemptions and the reassigned check."""

    def lists(self) -> tuple[str, ...]:
        """Every list the decision looks numbers up in, each once, in a fixed order."""
        names = list(self.suppress)
        names += [e.list_name for e in self.exemptions]
        if self.reassigned is not None:
            names.append(self.reassigned.list_name)
        names += self.number_types.consent_lists
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every policy of one file, the default, and the file's version."""

    policies: dict[str, Policy]
    default: str
    version: str
    roles: dict[str, ListRole] = field(default_factory=dict)

    def get(self, name: str) -> Policy:
        """The named policy; "" is the default.

        Raises:
            KeyError: no such policy (the caller turns it into its own error).
        """
        return self.policies[name or self.default]
