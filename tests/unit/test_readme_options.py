"""The README's Configuration table is the one documented place for every flag and variable."""

from __future__ import annotations

import re

from suppression.settings import option_table
from tests.conftest import REPO

TABLE = re.compile(r"<!-- options:begin -->\n(?P<table>.*?)\n<!-- options:end -->", re.S)


def test_readme_option_table_matches_the_settings() -> None:
    match = TABLE.search((REPO / "README.md").read_text())
    assert match is not None, "README.md lost its <!-- options:begin/end --> markers"
    assert match.group("table").strip() == option_table().strip(), (
        "README.md's option table is out of date; regenerate it between the markers with "
        "`.venv/bin/python -m suppression.settings`"
    )
