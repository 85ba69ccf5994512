"""With --log-format json every stderr line of `suppression` is one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroaring import BitMap64

from suppression.lists import SuppressionLists, Version
from suppression.snapshot import write_snapshot
from tests.conftest import REPO, ServerSubprocess

pytestmark = pytest.mark.integration


def _json_lines(text: str) -> list[dict[str, object]]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # fails on any plain-text line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


def test_serve_and_check_write_only_json_lines(
    serve_subprocess: Callable[..., ServerSubprocess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    lists = SuppressionLists({"internal": BitMap64([8613800138000])}, version=Version(1, 1))
    write_snapshot(data, lists.view)
    server = serve_subprocess("--data-dir", str(data), "--log-format", "json")
    server.wait_serving()
    check = [sys.executable, "-m", "suppression.cli", "check", "--log-format", "json"]
    runs = {
        "answered": ([*check, "--target", server.target, "+8613800138000"], 1),
        "unreachable": ([*check, "--target", "127.0.0.1:1", "--timeout", "1", "+1202"], 2),
        "bad flag": ([*check, "--output", "xml", "+8613800138000"], 2),
        "bad target": ([*check, "--target", "localhost:99999", "+8613800138000"], 2),
    }
    for name, (argv, code) in runs.items():
        result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == code, (name, result.stderr)
        records = _json_lines(result.stderr)
        if code == 2:
            assert [r["level"] for r in records] == ["ERROR"], name
            assert "8613800138000" not in result.stderr
    assert server.terminate() == 0
    records = _json_lines(server.log())
    messages = [str(r["message"]) for r in records]
    assert any(m.startswith("serving 1 lists") for m in messages)
    assert any("shutting down" in m for m in messages)
