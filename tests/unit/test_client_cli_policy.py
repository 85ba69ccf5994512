"""`suppression check --target` with policy options: through the client, answered as locally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pyroaring import BitMap64

from suppression.cli import main
from suppression.lists import ListInfo, ListKind, SuppressionLists
from suppression.policy.store import PolicyStore
from suppression.replica import Replica
from suppression.server import ServerOptions, create_server
from tests.conftest import replica_data
from tests.samples import WINDOW_AND_REASSIGNED_POLICIES

ON_REGISTRY = 12125550100
CONSENTED = 12125550101
SHANGHAI = 8613800138000
REASSIGNED = 12125550177

NUMBERS = [f"+{ON_REGISTRY}", f"+{CONSENTED}", f"+{SHANGHAI}", "12"]
AT = "2026-06-15T09:00-04:00"  # 21:00 in Shanghai: its window has just closed


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "policies": tmp_path / "policies.toml",
        "registry": tmp_path / "registry.txt",
        "consent": tmp_path / "consent.txt",
        "fcc": tmp_path / "fcc.csv",
    }
    paths["policies"].write_text(WINDOW_AND_REASSIGNED_POLICIES.format(version="cli-1"))
    paths["registry"].write_text(f"+{ON_REGISTRY}\n+{CONSENTED}\n")
    paths["consent"].write_text(f"+{CONSENTED}\n")
    paths["fcc"].write_text(f"number,date\n+{REASSIGNED},2025-01-01\n")
    return paths


@pytest.fixture
def target(files: dict[str, Path]) -> Iterator[str]:
    lists = SuppressionLists(
        {"registry": BitMap64([ON_REGISTRY, CONSENTED]), "consent": BitMap64([CONSENTED])},
        infos=[ListInfo("registry", ListKind.REGISTRY), ListInfo("consent", ListKind.CAMPAIGN)],
    )
    policies = PolicyStore(files["policies"], {"fcc": files["fcc"]})
    replica = Replica(replica_data(lists), policies=policies)
    replica.start()
    process = create_server(replica, ServerOptions(port=0), CollectorRegistry(), "127.0.0.1:0")
    yield f"127.0.0.1:{process.port}"
    process.stop(0)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["check", *args, "--output", "json"])
    return code, json.loads(capsys.readouterr().out)


def local_args(files: dict[str, Path]) -> list[str]:
    return [
        "--list", f"registry:registry={files['registry']}",
        "--list", f"consent:campaign={files['consent']}",
        "--policy-file", str(files["policies"]), "--dated-list", f"fcc={files['fcc']}",
    ]  # fmt: skip


def test_remote_check_decides_under_the_servers_policy_as_the_local_check_does(
    target: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, remote = run_json(capsys, *NUMBERS, "--target", target, "--decide-at", AT)
    local_code, local = run_json(capsys, *NUMBERS, *local_args(files), "--decide-at", AT)
    assert code == local_code == 1
    assert remote["results"] == local["results"]
    assert remote["policy_version"] == local["policy_version"] == "cli-1"
    rows = remote["results"]
    assert isinstance(rows, list)
    assert [(r["verdict"], r["rules"], r["exemptions"]) for r in rows] == [
        ("SUPPRESSED", ["list.registry"], []),
        ("ALLOWED", [], ["consent"]),
        ("DEFERRED", ["window"], []),
        ("INVALID", [], []),
    ]
    assert rows[2]["earliest"] == "2026-06-16T00:00:00+00:00"
    assert rows[0]["policy"] == "only"


def test_remote_check_sends_the_policy_consent_date_and_calling_line(
    target: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--policy", "rnd", "--consent-date", "2024-06-01", "--calling-line", "L1"]
    code, remote = run_json(capsys, f"+{REASSIGNED}", "--target", target, *args)
    _, local = run_json(capsys, f"+{REASSIGNED}", *local_args(files), *args)
    assert code == 1
    assert remote["results"] == local["results"]
    rows = remote["results"]
    assert isinstance(rows, list)
    assert (rows[0]["verdict"], rows[0]["rules"], rows[0]["policy"]) == (
        "SUPPRESSED",
        ["reassigned"],
        "rnd",
    )


def test_remote_table_prints_deferred_with_its_earliest_time_and_the_policy(
    target: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per row, whatever the terminal
    code = main(["check", f"+{SHANGHAI}", "--target", target, "--decide-at", AT])
    out = capsys.readouterr().out
    assert code == 1
    assert "DEFERRED" in out and "window until 2026-06-16T00:00:00+00:00" in out
    assert "policy only version cli-1" in out


def test_remote_check_refuses_a_local_policy_file_and_bad_times(
    target: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "+1", "--target", target, "--policy-file", str(files["policies"])])
    assert code == 2 and "read by the server" in capsys.readouterr().err
    code = main(["check", "+1", "--target", target, "--decide-at", "2026-06-15T09:00"])
    assert code == 2 and "has no UTC offset" in capsys.readouterr().err
    code = main(["check", f"+{ON_REGISTRY}", "--target", target, "--policy", "nope"])
    assert code == 2 and "nope" in capsys.readouterr().err
