"""The policy a scrub decides under: options that go together, one instant, resumes held to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from suppression.errors import ConfigError
from suppression.scrub import ScrubOptions, ScrubSummary
from suppression.scrub.policy import scrub_policy
from suppression.scrub.summary import SummaryError

POLICIES = """\
version = "v7"
default = "day"

[lists]
registry = "registry"

[policies.day]
suppress = ["registry"]

[policies.day.window]
start = "08:00"
end = "21:00"

[policies.night]
suppress = ["registry"]
"""
NOW = 1_781_528_400.75  # 2026-06-15T13:00:00.75Z


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.toml"
    path.write_text(POLICIES)
    return path


def test_no_policy_option_means_the_lists_alone() -> None:
    assert scrub_policy(ScrubOptions()) is None
    assert scrub_policy(ScrubOptions(targets=("a:1",)), resuming=True) is None


def test_local_policy_fixes_one_instant_whole_seconds_and_resolves_the_default(
    policy_file: Path,
) -> None:
    policy = scrub_policy(ScrubOptions(policy_file=policy_file), now=NOW)
    assert policy is not None
    assert policy.at_ms == 1_781_528_400_000
    assert (policy.resolved, policy.version, policy.name) == ("day", "v7", "")
    assert policy.request.at_ms == policy.at_ms
    given = scrub_policy(
        ScrubOptions(policy_file=policy_file, policy="night", decide_at="2026-06-15T09:00-04:00")
    )
    assert given is not None
    assert (given.resolved, given.at_ms) == ("night", 1_781_528_400_000)


def test_remote_policy_sends_the_name_and_instant_only() -> None:
    policy = scrub_policy(ScrubOptions(targets=("a:1",), policy="day"), now=NOW)
    assert policy is not None
    assert (policy.name, policy.served, policy.version) == ("day", None, "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policy": "day"}, "give it to decide locally"),
        ({"decide_at": "2026-06-15T13:00Z"}, "give it to decide locally"),
        ({"targets": ("a:1",), "policy_file": "FILE"}, "read by the server"),
        ({"targets": ("a:1",), "dated_lists": ("c=x.csv",), "policy": "day"}, "read by the server"),
        ({"policy_file": "FILE", "lists": ("registry",)}, "drop --lists"),
        ({"policy_file": "FILE", "as_of": "1-0"}, "--as-of with a policy"),
        ({"policy_file": "FILE", "policy": "nope"}, "policies: day, night"),
        ({"policy_file": "FILE", "decide_at": "2026-06-15T13:00"}, "no UTC offset"),
        ({"dated_lists": ("c=x.csv",)}, "give --policy-file too"),
    ],
)
def test_options_that_do_not_go_together_are_refused(
    policy_file: Path, changes: dict[str, object], message: str
) -> None:
    if changes.get("policy_file") == "FILE":
        changes = {**changes, "policy_file": policy_file}
    with pytest.raises(ConfigError, match=message):
        scrub_policy(ScrubOptions(**changes))  # type: ignore[arg-type]


def test_a_resume_keeps_the_recorded_instant_and_refuses_any_other(policy_file: Path) -> None:
    first = scrub_policy(ScrubOptions(policy_file=policy_file), now=NOW)
    assert first is not None
    recorded = first.record()
    later = NOW + 3_600
    resumed = scrub_policy(ScrubOptions(policy_file=policy_file), True, recorded, now=later)
    assert resumed is not None and resumed.at_ms == first.at_ms
    same = ScrubOptions(policy_file=policy_file, decide_at="2026-06-15T13:00:00Z")
    assert scrub_policy(same, True, recorded) is not None
    for options in (
        ScrubOptions(policy_file=policy_file, policy="night"),
        ScrubOptions(policy_file=policy_file, decide_at="2026-06-15T14:00:00Z"),
        ScrubOptions(),
    ):
        with pytest.raises(ConfigError, match="--resume: the interrupted scrub decided under"):
            scrub_policy(options, True, recorded, now=later)
    policy_file.write_text(POLICIES.replace('"v7"', '"v8"'))
    with pytest.raises(ConfigError, match="this one would under the default policy version v8"):
        scrub_policy(ScrubOptions(policy_file=policy_file), True, recorded, now=later)
    with pytest.raises(ConfigError, match="decided under no policy"):
        scrub_policy(ScrubOptions(policy_file=policy_file), True, None, now=later)


def summary(**counts: int) -> ScrubSummary:
    fields = {"rows_in": 0, "clean": 0, "suppressed": 0, "invalid": 0, "duplicates": 0}
    fields.update(counts)
    return ScrubSummary(
        input="leads.csv", mode="local", encoding="utf-8", delimiter=",", column="phone",
        column_detection="name", region="US", distinct_numbers=0, blank_lines=0,
        lists_checked=(), suppressed_per_list={}, invalid_per_reason={}, data_versions={},
        policy="day", policy_version="v7", decided_at="2026-06-15T13:00:00Z", **fields,
    )  # fmt: skip


def test_deferred_rows_are_part_of_the_balance() -> None:
    balanced = summary(rows_in=5, clean=2, suppressed=1, deferred=2)
    assert balanced.balanced and balanced.to_dict()["deferred"] == 2
    text = balanced.to_text()
    assert "clean + suppressed + invalid + deferred" in text and "day version v7" in text
    with pytest.raises(SummaryError, match="2 deferred"):
        summary(rows_in=4, clean=2, suppressed=1, deferred=2)
    with pytest.raises(SummaryError):
        summary(rows_in=5, clean=2, suppressed=1)
