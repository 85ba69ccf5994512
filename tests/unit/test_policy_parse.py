"""The policy file: the documented examples parse; a bad file is refused with line and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from suppression.errors import ConfigError, PolicyError, SuppressionError
from suppression.policy import load_policy_file, parse_policies
from suppression.policy.locate import line_of
from suppression.policy.model import CapScope, ListRole, NoData

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"

GOOD = """\
default = "a"

[lists]
reg = "registry"
mine = "opt_out"
ebr = "exemption"

[policies.a]
suppress = ["reg", "mine"]

[[policies.a.exemptions]]
list = "ebr"
lifts = ["reg"]
days = 90

[policies.a.window]
start = "08:00"
end = "21:00"

[[policies.a.caps]]
per = "number"
max = 3
hours = 24

[policies.b]
suppress = ["mine"]
"""


def examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_documented_examples_parse() -> None:
    us, china = examples()
    policies = parse_policies(us, "us")
    assert policies.default == "us_tsr" and policies.version == "us-2026-11-25"
    tsr = policies.get("")
    assert [e.months for e in tsr.exemptions] == [18, 3, 0]
    assert tsr.window is not None and tsr.window.rule.end_minute == 21 * 60
    assert dict(tsr.window.prefixes)["1305"].end_minute == 20 * 60
    assert [(c.scope, c.limit, c.seconds) for c in tsr.caps] == [
        (CapScope.NUMBER, 3, 86_400),
        (CapScope.LINE, 100, 3_600),
    ]
    assert tsr.reassigned is not None and tsr.reassigned.no_data is NoData.SUPPRESS
    assert policies.get("us_tcpa_autodial").number_types.need_consent == {"mobile"}
    cn = parse_policies(china, "cn").get("")
    assert cn.date_zone == "Asia/Shanghai" and len(cn.caps) == 3
    assert parse_policies(china).roles["cn_declined"] is ListRole.OPT_OUT


def test_a_file_without_version_is_versioned_by_its_content() -> None:
    first = parse_policies(GOOD).version
    assert first.startswith("sha256:")
    assert parse_policies(GOOD + "\n# changed\n").version != first


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(GOOD)
    assert set(load_policy_file(path).policies) == {"a", "b"}
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.toml")


def refused(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, "policies.toml")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, SuppressionError)
    return str(caught.value)


def test_consent_may_not_lift_an_opt_out_list() -> None:
    text = GOOD.replace('lifts = ["reg"]', 'lifts = ["reg", "mine"]')
    message = refused(text)
    assert message.startswith("policies.toml line 13 (policies.a.exemptions[0].lifts[1]):")
    assert "may not lift 'mine', an opt-out list" in message
    assert "removal" in message


def test_the_opt_out_rule_holds_for_the_documented_us_file() -> None:
    us = examples()[0]
    broken = us.replace(
        'list = "written_consent"\nlifts = ["national_dnc"]',
        'list = "written_consent"\nlifts = ["national_dnc", "company_dnc"]',
        1,
    )
    assert broken != us
    message = refused(broken)
    line = broken.splitlines()[int(message.split(" line ")[1].split()[0]) - 1]
    assert line == 'lifts = ["national_dnc", "company_dnc"]'


@pytest.mark.parametrize(
    ("old", "new", "line", "reason"),
    [
        ('end = "21:00"', 'end = "21:00', 18, "not valid TOML"),
        ("days = 90", "dayz = 90", 14, "unknown key 'dayz'"),
        ("days = 90", "days = 90\nmonths = 3", 15, "give days or months, not both"),
        ('end = "21:00"', 'end = "07:00"', 18, "must end after it starts"),
        ('start = "08:00"', 'start = "8am"', 17, "is not a local time"),
        ("max = 3", "max = 0", 22, "at least 1"),
        ("hours = 24", "hours = 24\nminutes = 5", 20, "exactly one of minutes, hours or days"),
        ('per = "number"', 'per = "sim"', 21, 'per must be "number" or "line"'),
        ('lifts = ["reg"]', 'lifts = ["nope"]', 13, "'nope' is not declared in [lists]"),
        ('suppress = ["mine"]', 'suppress = ["ebr"]', 26, "only registry, opt_out and campaign"),
        ('default = "a"', 'default = "c"', 1, "default policy 'c' is not defined"),
        ('mine = "opt_out"', 'mine = "optout"', 5, "role 'optout' is not one of"),
        ('suppress = ["reg", "mine"]', 'suppress = ["reg", "reg"]', 9, "names a value twice"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_and_reason(
    old: str, new: str, line: int, reason: str
) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    message = refused(text)
    assert re.match(rf"policies.toml line {line}\b", message), message
    assert reason in message, message


def test_window_overrides_and_zones_are_checked() -> None:
    base = GOOD + '\n[[policies.a.window.overrides]]\nprefix = "+1305"\nend = "20:00"\n'
    assert parse_policies(base).get("a").window is not None
    assert "either a prefix or a zone" in refused(base.replace('prefix = "+1305"', ""))
    assert "must be '+' and 1-9 digits" in refused(base.replace("+1305", "1305"))
    zoned = base.replace('prefix = "+1305"', 'zone = "Mars/Olympus"')
    assert "line 29 " in refused(zoned) and "not a known time zone" in refused(zoned)


def test_several_policies_need_a_default() -> None:
    assert "no `default" in refused(GOOD.replace('default = "a"\n', ""))


def test_line_of_follows_tables_arrays_and_quoted_keys() -> None:
    text = '[a]\nx = 1\n[[a.b]]\ny = 2\n[[a.b]]\ny = 3\n[a."c.d"]\nz = 4\n'
    assert line_of(text, ("a", "x")) == 2
    assert line_of(text, ("a", "b", 1, "y")) == 6
    assert line_of(text, ("a", "b", 1)) == 5
    assert line_of(text, ("a", "c.d", "z")) == 8
    assert line_of(text, ("a", "b", 0, "missing")) == 3
    assert line_of(text, ("nowhere",)) == 0
