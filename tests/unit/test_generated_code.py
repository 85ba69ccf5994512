"""The committed generated code must match the .proto; regenerate with `make proto`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(REPO / "proto/suppression/v1/suppression.proto"),
        ],
        check=True,
    )
    for name in ("suppression_pb2.py", "suppression_pb2.pyi", "suppression_pb2_grpc.py"):
        fresh = (tmp_path / "suppression/v1" / name).read_text()
        committed = (REPO / "suppression/v1" / name).read_text()
        assert fresh == committed, f"suppression/v1/{name} is stale: run `make proto`"
