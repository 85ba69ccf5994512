"""The alert rules docs/security.md suggests are valid Prometheus rules (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_suggested_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed; run `make test`, which installs it")
    text = (ROOT / "docs" / "security.md").read_text()
    block = text.split("### Suggested alert rules")[1].split("```yaml\n")[1].split("```")[0]
    rules = tmp_path / "rules.yml"
    indented = "".join(f"    {line}\n" for line in block.splitlines())
    rules.write_text(f"groups:\n  - name: trust\n    rules:\n{indented}")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout
