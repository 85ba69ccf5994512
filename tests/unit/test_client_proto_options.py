"""The proto's options for other languages, and the buf configuration that lints it."""

from __future__ import annotations

import re
from pathlib import Path

from suppression.v1 import suppression_pb2 as pb

REPO = Path(__file__).resolve().parents[2]


def test_the_proto_names_packages_for_other_languages() -> None:
    options = pb.DESCRIPTOR.GetOptions()
    assert options.go_package.endswith("/suppression/v1;suppressionv1")
    assert options.java_package.endswith(".suppression.v1")
    assert options.java_multiple_files
    assert options.java_outer_classname == "SuppressionProto"
    assert options.csharp_namespace == "Suppression.V1"


def test_buf_lints_with_standard_and_every_exception_is_explained() -> None:
    config = (REPO / "buf.yaml").read_text()
    assert config.startswith("#") and "\nversion: v2\n" in config
    assert re.search(r"lint:\n  use:\n    - STANDARD\n", config)
    excused = re.findall(r"^    ([A-Z_]+):$", config, re.MULTILINE)
    assert excused, "the ignore_only rules moved; update this test"
    guide = (REPO / "docs/other-languages.md").read_text()
    for rule in excused:
        assert f"`{rule}`" in guide, f"docs/other-languages.md does not explain {rule}"
