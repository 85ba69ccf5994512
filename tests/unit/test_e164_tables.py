"""The committed country tables are what phonenumbers' metadata says today."""

from __future__ import annotations

import subprocess
import sys

from suppression import e164_tables
from suppression.e164_tables_gen import compute_tables


def test_the_generated_tables_match_the_installed_metadata() -> None:
    masks, regions = compute_tables()
    assert e164_tables.NSN_LENGTHS_BY_COUNTRY_CODE == masks, (
        "stale: run python -m suppression.e164_tables_gen"
    )
    assert e164_tables.SUPPORTED_REGIONS == frozenset(regions)


def test_importing_the_normalizer_loads_no_phonenumbers_metadata() -> None:
    code = "import sys, suppression.e164; print('phonenumbers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
