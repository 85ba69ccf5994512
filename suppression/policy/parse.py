"""The policy file: TOML into a checked :class:`PolicySet`, refused with the line and the reason.

Format and examples: docs/policy.md. Every key is checked, unknown keys
included: a typo such as ``lfits`` must not quietly weaken a policy. The one
rule that no file can break: an exemption never lifts an opt-out list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suppression.errors import PolicyError
from suppression.policy.attempts import ATTEMPT_RETENTION
from suppression.policy.locate import PathItem, line_of
from suppression.policy.model import (
    LIFTABLE,
    Cap,
    CapScope,
    Exemption,
    ListRole,
    NoData,
    NumberTypeRules,
    Policy,
    PolicySet,
    Reassigned,
    Window,
    WindowRule,
)

__all__ = ["NUMBER_TYPES", "load_policy_file", "parse_policies"]

NUMBER_TYPES = frozenset(
    {
        "fixed_line",
        "mobile",
        "fixed_line_or_mobile",
        "toll_free",
        "premium_rate",
        "shared_cost",
        "voip",
        "personal_number",
        "pager",
        "uan",
        "voicemail",
        "unknown",
    }
)
"""phonenumbers' number types, lower case."""

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_PREFIX = re.compile(r"^\+[1-9]\d{0,8}$")
_EPOCH = dt.date(1970, 1, 1)
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")

_TOP_KEYS = {"version", "default", "lists", "policies"}
_POLICY_KEYS = {
    "suppress",
    "exemptions",
    "window",
    "caps",
    "reassigned",
    "number_types",
    "date_zone",
}
_EXEMPTION_KEYS = {"name", "list", "lifts", "days", "months"}
_WINDOW_KEYS = {"start", "end", "days", "quiet_days", "unknown_zones", "overrides"}
_OVERRIDE_KEYS = {"prefix", "zone", "start", "end", "days", "quiet_days"}
_CAP_KEYS = {"per", "max", "minutes", "hours", "days"}
_REASSIGNED_KEYS = {"list", "data_begins", "no_data"}
_TYPE_KEYS = {"block", "need_consent", "consent_lists"}


def load_policy_file(path: Path) -> PolicySet:
    """Read and check a policy file.

    Raises:
        PolicyError: the file cannot be read, does not parse or breaks a rule;
            the message names the file, the line and the reason.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read it ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path}: not UTF-8 text") from exc
    return parse_policies(text, source=str(path))


def parse_policies(text: str, source: str = "policy file") -> PolicySet:
    """Parse and check a policy file's text.

    Raises:
        PolicyError: see :func:`load_policy_file`.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _TOML_LINE.search(str(exc))
        line = f" line {where.group(1)}" if where else ""
        raise PolicyError(f"{source}{line}: not valid TOML: {exc}") from exc
    return _Reader(text, source).read(raw)


class _Reader:
    """Walks the parsed TOML, raising PolicyError with the line of the offending key."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.roles: dict[str, ListRole] = {}

    def fail(self, path: tuple[PathItem, ...], reason: str) -> PolicyError:
        line = line_of(self.text, path)
        where = f"{self.source} line {line}" if line else self.source
        return PolicyError(f"{where} ({_dotted(path)}): {reason}")

    def read(self, raw: dict[str, Any]) -> PolicySet:
        self.keys(raw, (), _TOP_KEYS)
        lists = self.table(raw, ("lists",), required=True)
        for name, role in lists.items():
            path = ("lists", name)
            if not _NAME.match(name):
                raise self.fail(path, f"list name {name!r} must be 1-64 letters, digits or '_.:-'")
            try:
                self.roles[name] = ListRole(role)
            except ValueError:
                choices = ", ".join(r.value for r in ListRole)
                raise self.fail(path, f"role {role!r} is not one of {choices}") from None
        policies_raw = self.table(raw, ("policies",), required=True)
        if not policies_raw:
            raise self.fail(("policies",), "no policy is defined")
        policies = {}
        for name, body in policies_raw.items():
            path = ("policies", name)
            if not _NAME.match(name):
                raise self.fail(
                    path, f"policy name {name!r} must be 1-64 letters, digits or '_.:-'"
                )
            if not isinstance(body, dict):
                raise self.fail(path, "must be a table")
            policies[name] = self.policy(name, body, path)
        default = raw.get("default")
        if default is None:
            if len(policies) > 1:
                raise self.fail((), 'several policies and no `default = "NAME"`: name one')
            default = next(iter(policies))
        elif default not in policies:
            raise self.fail(("default",), f"default policy {default!r} is not defined")
        given = raw.get("version")
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise self.fail(("version",), "version must be a non-empty string")
        digest = hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]
        version = given.strip() if given else f"sha256:{digest}"
        return PolicySet(policies, default, version, dict(self.roles))

    # -- one policy ---------------------------------------------------------------

    def policy(self, name: str, body: dict[str, Any], path: tuple[PathItem, ...]) -> Policy:
        self.keys(body, path, _POLICY_KEYS)
        suppress = self.names(body, (*path, "suppress"), required=True)
        for index, list_name in enumerate(suppress):
            role = self.role(list_name, (*path, "suppress", index))
            if role not in (ListRole.REGISTRY, ListRole.OPT_OUT, ListRole.CAMPAIGN):
                raise self.fail(
                    (*path, "suppress", index),
                    f"list {list_name!r} is declared {role}; only registry, opt_out and "
                    "campaign lists suppress",
                )
        exemptions = tuple(
            self.exemption(item, (*path, "exemptions", index), suppress)
            for index, item in enumerate(self.tables(body, (*path, "exemptions")))
        )
        seen: set[str] = set()
        for index, exemption in enumerate(exemptions):
            if exemption.name in seen:
                raise self.fail(
                    (*path, "exemptions", index, "name"),
                    f"exemption {exemption.name!r} is named twice; give each its own name",
                )
            seen.add(exemption.name)
        window_raw = self.table(body, (*path, "window"))
        window = self.window(window_raw, (*path, "window")) if window_raw else None
        caps = tuple(
            self.cap(item, (*path, "caps", index))
            for index, item in enumerate(self.tables(body, (*path, "caps")))
        )
        reassigned_raw = self.table(body, (*path, "reassigned"))
        reassigned = (
            self.reassigned(reassigned_raw, (*path, "reassigned")) if reassigned_raw else None
        )
        types = self.number_types(self.table(body, (*path, "number_types")), path)
        date_zone = body.get("date_zone", "UTC")
        self.zone(date_zone, (*path, "date_zone"))
        return Policy(name, suppress, exemptions, window, caps, reassigned, types, date_zone)

    def exemption(
        self, raw: dict[str, Any], path: tuple[PathItem, ...], suppress: tuple[str, ...]
    ) -> Exemption:
        self.keys(raw, path, _EXEMPTION_KEYS)
        list_name = self.string(raw, (*path, "list"))
        if self.role(list_name, (*path, "list")) is not ListRole.EXEMPTION:
            raise self.fail(
                (*path, "list"),
                f"list {list_name!r} is declared {self.roles[list_name]}, not exemption",
            )
        lifts = self.names(raw, (*path, "lifts"), required=True)
        for index, lifted in enumerate(lifts):
            role = self.role(lifted, (*path, "lifts", index))
            if role is ListRole.OPT_OUT:
                raise self.fail(
                    (*path, "lifts", index),
                    f"exemption list {list_name!r} may not lift {lifted!r}, an opt-out list: "
                    'nothing lifts an opt-out list. A person who said "don\'t call me" stays '
                    "suppressed until they consent again, and that is a removal from the list "
                    "(source consent, with evidence), not an exemption",
                )
            if role not in LIFTABLE:
                raise self.fail(
                    (*path, "lifts", index),
                    f"{lifted!r} is declared {role}; an exemption lifts registry or campaign lists",
                )
            if lifted not in suppress:
                raise self.fail(
                    (*path, "lifts", index),
                    f"{lifted!r} is not among this policy's suppress lists: nothing to lift",
                )
        days = self.count(raw, (*path, "days"), minimum=1)
        months = self.count(raw, (*path, "months"), minimum=1)
        if days and months:
            raise self.fail((*path, "months"), "give days or months, not both")
        name = raw.get("name", list_name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail((*path, "name"), "name must be 1-64 letters, digits or '_.:-'")
        return Exemption(name, list_name, lifts, days, months)

    def window(self, raw: dict[str, Any], path: tuple[PathItem, ...]) -> Window:
        self.keys(raw, path, _WINDOW_KEYS)
        rule = self.window_rule(raw, path, None)
        prefixes: dict[str, WindowRule] = {}
        zones: dict[str, WindowRule] = {}
        for index, item in enumerate(self.tables(raw, (*path, "overrides"))):
            where = (*path, "overrides", index)
            self.keys(item, where, _OVERRIDE_KEYS)
            override = self.window_rule(item, where, rule)
            if ("prefix" in item) == ("zone" in item):
                raise self.fail(where, "an override names either a prefix or a zone")
            if "prefix" in item:
                prefix = item["prefix"]
                if not isinstance(prefix, str) or not _PREFIX.match(prefix):
                    raise self.fail(
                        (*where, "prefix"), f"prefix {prefix!r} must be '+' and 1-9 digits"
                    )
                if prefix[1:] in prefixes:
                    raise self.fail((*where, "prefix"), f"prefix {prefix} is overridden twice")
                prefixes[prefix[1:]] = override
            else:
                zone = self.zone(item["zone"], (*where, "zone"))
                if zone in zones:
                    raise self.fail((*where, "zone"), f"zone {zone} is overridden twice")
                zones[zone] = override
        unknown = self.names(raw, (*path, "unknown_zones"), pattern=False)
        for index, zone in enumerate(unknown):
            self.zone(zone, (*path, "unknown_zones", index))
        return Window(rule, tuple(sorted(prefixes.items())), tuple(sorted(zones.items())), unknown)

    def window_rule(
        self, raw: dict[str, Any], path: tuple[PathItem, ...], base: WindowRule | None
    ) -> WindowRule:
        start = self.minute(raw, (*path, "start"), base.start_minute if base else None)
        end = self.minute(raw, (*path, "end"), base.end_minute if base else None)
        if end <= start:
            raise self.fail((*path, "end"), "the window must end after it starts, on the same day")
        weekdays = base.weekdays if base else frozenset(range(7))
        if "days" in raw:
            names = self.names(raw, (*path, "days"), pattern=False)
            bad = [n for n in names if n not in _WEEKDAYS]
            if bad:
                raise self.fail(
                    (*path, "days"), f"{bad[0]!r} is not a weekday ({', '.join(_WEEKDAYS)})"
                )
            weekdays = frozenset(_WEEKDAYS.index(n) for n in names)
            if not weekdays:
                raise self.fail((*path, "days"), "no weekday is allowed: the window never opens")
        quiet = base.quiet_days if base else frozenset()
        if "quiet_days" in raw:
            quiet = frozenset(self.day(raw, (*path, "quiet_days")))
        return WindowRule(start, end, weekdays, quiet)

    def cap(self, raw: dict[str, Any], path: tuple[PathItem, ...]) -> Cap:
        self.keys(raw, path, _CAP_KEYS)
        per = raw.get("per")
        try:
            scope = CapScope(str(per))
        except ValueError:
            raise self.fail((*path, "per"), 'per must be "number" or "line"') from None
        limit = self.count(raw, (*path, "max"), minimum=1)
        if not limit:
            raise self.fail((*path, "max"), "a cap needs max = N (attempts)")
        units = [(k, s) for k, s in (("minutes", 60), ("hours", 3600), ("days", 86400)) if k in raw]
        if len(units) != 1:
            raise self.fail(path, "a cap needs exactly one of minutes, hours or days")
        key, unit = units[0]
        amount = self.count(raw, (*path, key), minimum=1)
        if amount * unit > ATTEMPT_RETENTION:
            raise self.fail(
                (*path, key),
                f"a cap's window is at most {ATTEMPT_RETENTION // 86_400} days: "
                "replicas keep attempts that long",
            )
        return Cap(scope, limit, amount * unit)

    def reassigned(self, raw: dict[str, Any], path: tuple[PathItem, ...]) -> Reassigned:
        self.keys(raw, path, _REASSIGNED_KEYS)
        list_name = self.string(raw, (*path, "list"))
        if self.role(list_name, (*path, "list")) is not ListRole.REASSIGNED:
            raise self.fail((*path, "list"), f"list {list_name!r} is not declared reassigned")
        if "data_begins" not in raw:
            raise self.fail(path, "data_begins = YYYY-MM-DD (the first day the data covers)")
        (begins,) = self.day({"d": [raw["data_begins"]]}, (*path, "data_begins"), key="d")
        try:
            no_data = NoData(raw.get("no_data", "suppress"))
        except ValueError:
            raise self.fail((*path, "no_data"), 'no_data is "suppress" or "allow"') from None
        return Reassigned(list_name, begins, no_data)

    def number_types(self, raw: dict[str, Any], path: tuple[PathItem, ...]) -> NumberTypeRules:
        where = (*path, "number_types")
        self.keys(raw, where, _TYPE_KEYS)
        block = self.names(raw, (*where, "block"), pattern=False)
        need = self.names(raw, (*where, "need_consent"), pattern=False)
        for key, values in (("block", block), ("need_consent", need)):
            for index, value in enumerate(values):
                if value not in NUMBER_TYPES:
                    raise self.fail(
                        (*where, key, index),
                        f"{value!r} is not a number type ({', '.join(sorted(NUMBER_TYPES))})",
                    )
        consent = self.names(raw, (*where, "consent_lists"))
        for index, name in enumerate(consent):
            if self.role(name, (*where, "consent_lists", index)) is not ListRole.EXEMPTION:
                raise self.fail(
                    (*where, "consent_lists", index), f"{name!r} is not declared exemption"
                )
        if need and not consent:
            raise self.fail((*where, "need_consent"), "need_consent needs consent_lists")
        return NumberTypeRules(frozenset(block), frozenset(need), consent)

    # -- values -----------------------------------------------------------------

    def keys(self, raw: Mapping[str, Any], path: tuple[PathItem, ...], allowed: set[str]) -> None:
        for key in raw:
            if key not in allowed:
                raise self.fail(
                    (*path, key),
                    f"unknown key {key!r}; expected {', '.join(sorted(allowed))}",
                )

    def table(
        self, raw: Mapping[str, Any], path: tuple[PathItem, ...], required: bool = False
    ) -> dict[str, Any]:
        value = raw.get(str(path[-1]))
        if value is None:
            if required:
                raise self.fail(path[:-1], f"missing [{_dotted(path)}]")
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        return value

    def tables(self, raw: Mapping[str, Any], path: tuple[PathItem, ...]) -> list[dict[str, Any]]:
        value = raw.get(str(path[-1]), [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(path, f"must be an array of tables ([[{_dotted(path)}]])")
        return value

    def string(self, raw: Mapping[str, Any], path: tuple[PathItem, ...]) -> str:
        value = raw.get(str(path[-1]))
        if not isinstance(value, str) or not value:
            raise self.fail(path, "a non-empty string is required")
        return value

    def names(
        self,
        raw: Mapping[str, Any],
        path: tuple[PathItem, ...],
        required: bool = False,
        pattern: bool = True,
    ) -> tuple[str, ...]:
        value = raw.get(str(path[-1]))
        if value is None:
            if required:
                raise self.fail(path, "required: a list of names")
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, "must be a list of strings")
        if required and not value:
            raise self.fail(path, "must name at least one")
        if len(set(value)) != len(value):
            raise self.fail(path, "names a value twice")
        if pattern:
            for index, name in enumerate(value):
                if not _NAME.match(name):
                    raise self.fail((*path, index), f"{name!r} is not a list name")
        return tuple(value)

    def role(self, name: str, path: tuple[PathItem, ...]) -> ListRole:
        role = self.roles.get(name)
        if role is None:
            raise self.fail(path, f'list {name!r} is not declared in [lists] (name = "role")')
        return role

    def count(self, raw: Mapping[str, Any], path: tuple[PathItem, ...], minimum: int) -> int:
        value = raw.get(str(path[-1]))
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(path, f"must be a whole number of at least {minimum}")
        return value

    def minute(
        self, raw: Mapping[str, Any], path: tuple[PathItem, ...], default: int | None
    ) -> int:
        value = raw.get(str(path[-1]))
        if value is None:
            if default is None:
                raise self.fail(path, 'required: a local time "HH:MM"')
            return default
        match = _TIME.match(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(path, f'{value!r} is not a local time "HH:MM" (00:00 to 24:00)')
        minute = int(match.group(1)) * 60 + int(match.group(2))
        if minute > 24 * 60:
            raise self.fail(path, f"{value!r} is after 24:00")
        return minute

    def day(self, raw: Mapping[str, Any], path: tuple[PathItem, ...], key: str = "") -> list[int]:
        values = raw.get(key or str(path[-1]))
        if not isinstance(values, list):
            raise self.fail(path, "must be a list of dates (YYYY-MM-DD)")
        days = []
        for value in values:
            if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
                raise self.fail(path, f"{value!r} is not a date (YYYY-MM-DD)")
            if isinstance(value, str):
                try:
                    value = dt.date.fromisoformat(value)
                except ValueError:
                    raise self.fail(path, f"{value!r} is not a date (YYYY-MM-DD)") from None
            days.append((value - _EPOCH).days)
        return days

    def zone(self, value: object, path: tuple[PathItem, ...]) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, "a time zone name such as America/New_York is required")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.fail(path, f"{value!r} is not a known time zone") from None
        return value


def _dotted(path: tuple[PathItem, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
