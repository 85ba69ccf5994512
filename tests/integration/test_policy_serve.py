"""`suppression serve --policy-file`: policy answers over the network, and SIGHUP reloads."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc
from tests.conftest import REPO, ServerSubprocess, wait_for
from tests.samples import DAY_AND_NIGHT_POLICIES

pytestmark = pytest.mark.integration

NY_ON_REGISTRY = 12125550100
NY_CONSENTED = 12125550101
NY_OPTED_OUT = 12125550102
SHANGHAI = 8613800138000


def write_lists(tmp_path: Path) -> list[str]:
    files = {
        "registry:registry": [NY_ON_REGISTRY, NY_CONSENTED, NY_OPTED_OUT],
        "mine": [NY_OPTED_OUT],
        "consent:campaign": [NY_CONSENTED, NY_OPTED_OUT],
    }
    args = []
    for spec, numbers in files.items():
        path = tmp_path / f"{spec.split(':')[0]}.txt"
        path.write_text("".join(f"+{n}\n" for n in numbers))
        args += ["--list", f"{spec}={path}"]
    return args


def at_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def check(server: ServerSubprocess, **fields: object) -> pb.CheckResponse:
    with grpc.insecure_channel(server.target) as channel:
        request = pb.CheckRequest(
            e164=[NY_ON_REGISTRY, NY_CONSENTED, NY_OPTED_OUT, SHANGHAI], **fields
        )
        return pb_grpc.SuppressionStub(channel).Check(request, timeout=10)


def named(mask: int, names: list[str]) -> set[str]:
    return {name for bit, name in enumerate(names) if mask >> bit & 1}


def test_serve_decides_under_policies_and_reloads_on_sighup(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(DAY_AND_NIGHT_POLICIES.format(version="v1", start="08:00"))
    server = serve_subprocess(*write_lists(tmp_path), "--policy-file", str(policy_file))
    server.wait_serving()

    # 2026-06-15 13:00 UTC: 09:00 in New York, 21:00 in Shanghai.
    answer = check(server, decide_at_ms=at_ms(2026, 6, 15, 13, 0))
    assert (answer.policy, answer.policy_version) == ("day", "v1")
    assert list(answer.verdicts) == [pb.SUPPRESSED, pb.ALLOWED, pb.SUPPRESSED, pb.DEFERRED]
    rules = [named(mask, list(answer.rule_names)) for mask in answer.rules]
    assert rules == [{"list.registry"}, set(), {"list.mine"}, {"window"}]
    exempt = [named(mask, list(answer.exemption_names)) for mask in answer.exemptions]
    assert exempt == [set(), {"consent"}, {"consent"}, set()]  # lifted the registry, not "mine"
    assert list(answer.earliest_ms) == [0, 0, 0, at_ms(2026, 6, 16, 0, 0)]  # 08:00 in Shanghai
    assert list(answer.matched) == [0b01, 0, 0b10, 0]

    night = check(server, policy="night", decide_at_ms=at_ms(2026, 6, 15, 13, 0))
    assert list(night.verdicts) == [pb.SUPPRESSED, pb.SUPPRESSED, pb.SUPPRESSED, pb.ALLOWED]

    with pytest.raises(grpc.RpcError) as refused:
        check(server, policy="nope")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown policy 'nope'; policies: day, night" in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as with_lists:
        check(server, lists=["registry"])
    assert "send no lists with a policy" in str(with_lists.value.details())

    # A bad file on SIGHUP: refused with its line, the old policies keep answering.
    policy_file.write_text(
        DAY_AND_NIGHT_POLICIES.format(version="v2", start="08:00").replace(
            'lifts = ["registry"]', 'lifts = ["registry", "mine"]'
        )
    )
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in server.log(), 10, "the refused reload")
    assert "still serving version v1" in server.log()
    assert "line 14 (policies.day.exemptions[0].lifts[1])" in server.log()
    assert check(server).policy_version == "v1"

    # A good file: the new policies answer, and the server never stopped.
    policy_file.write_text(DAY_AND_NIGHT_POLICIES.format(version="v3", start="10:00"))
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: check(server).policy_version == "v3", 10, "the reload")
    later = check(server, decide_at_ms=at_ms(2026, 6, 15, 13, 0))
    assert list(later.verdicts)[1] == pb.DEFERRED  # 09:00 in New York is before 10:00 now
    assert server.process.poll() is None


def test_serve_refuses_a_bad_policy_file_at_start(tmp_path: Path) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(DAY_AND_NIGHT_POLICIES.format(version="v1", start="8 am"))
    run = subprocess.run(
        [sys.executable, "-m", "suppression.cli", "serve", "--port", "0", "--metrics-port", "0",
         *write_lists(tmp_path), "--policy-file", str(policy_file)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "policies.toml line 17 (policies.day.window.start)" in run.stderr
    assert "is not a local time" in run.stderr


DATED_POLICIES = """\
version = "dated-1"

[lists]
registry = "registry"
ebr = "exemption"
gone = "reassigned"

[policies.tsr]
date_zone = "America/New_York"
suppress = ["registry"]

[[policies.tsr.exemptions]]
list = "ebr"
lifts = ["registry"]
months = 18

[policies.tsr.reassigned]
list = "gone"
data_begins = 2021-01-27
"""


def test_dated_lists_lift_for_a_while_and_answer_reassignment(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(DATED_POLICIES)
    registry = tmp_path / "registry.txt"
    registry.write_text(f"+{NY_ON_REGISTRY}\n+{NY_CONSENTED}\n")
    ebr = tmp_path / "ebr.csv"
    ebr.write_text(f"date,number\n2025-05-31,+{NY_ON_REGISTRY}\n2024-01-01,+{NY_CONSENTED}\n")
    gone = tmp_path / "gone.csv"
    gone.write_text(f"number,date\n+{NY_OPTED_OUT},2025-06-01\n")
    server = serve_subprocess(
        "--list", f"registry:registry={registry}",
        "--policy-file", str(policy_file),
        "--dated-list", f"ebr={ebr}", "--dated-list", f"gone={gone}",
    )  # fmt: skip
    server.wait_serving()

    def verdicts(when: int, consent_day: int = 0) -> list[int]:
        return list(check(server, decide_at_ms=when, consent_day=consent_day).verdicts)

    # 18 months after 2025-05-31 is 2026-11-30 (clipped): the EBR holds until that day.
    before_edge = at_ms(2026, 11, 30, 4, 59)  # 23:59 on the 29th in New York
    on_edge = at_ms(2026, 11, 30, 5, 0)
    assert verdicts(before_edge)[:2] == [pb.ALLOWED, pb.SUPPRESSED]  # 2024's EBR expired
    assert verdicts(on_edge)[:2] == [pb.SUPPRESSED, pb.SUPPRESSED]
    # Consent on 2025-06-01: disconnected that day, so reassigned since; a day later, not.
    june_2025 = (dt.date(2025, 6, 1) - dt.date(1970, 1, 1)).days
    assert verdicts(before_edge, june_2025)[2] == pb.SUPPRESSED
    assert verdicts(before_edge, june_2025 + 1)[2] == pb.ALLOWED
    answer = check(server, decide_at_ms=before_edge, consent_day=june_2025 - 2000)
    assert named(answer.rules[2], list(answer.rule_names)) == {"reassigned.no_data"}

    # A dated file with a bad row on SIGHUP: refused with its line, the old lists stay.
    ebr.write_text(f"number,date\n+{NY_ON_REGISTRY},2025-05-31\n+{NY_CONSENTED},someday\n")
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in server.log(), 10, "the refused reload")
    assert "ebr.csv line 3: 'someday' is not a date" in server.log()
    assert verdicts(before_edge)[:2] == [pb.ALLOWED, pb.SUPPRESSED]


def test_a_worker_pool_forwards_sighup_to_every_worker(
    tmp_path: Path, serve_subprocess: Callable[..., ServerSubprocess]
) -> None:
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(DAY_AND_NIGHT_POLICIES.format(version="w1", start="08:00"))
    server = serve_subprocess(
        *write_lists(tmp_path), "--policy-file", str(policy_file), "--workers", "2"
    )
    server.wait_serving()
    policy_file.write_text(DAY_AND_NIGHT_POLICIES.format(version="w2", start="08:00"))
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: server.log().count("policies reloaded") >= 2, 15, "both workers to reload")
    # New connections land on either worker: every answer is the new version.
    assert {check(server).policy_version for _ in range(20)} == {"w2"}
    assert server.process.poll() is None
