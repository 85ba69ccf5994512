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


def test_importing_the_normalizer_loads_neither_phonenumbers_nor_numpy() -> None:
    """Both load on first use: a loose parse, a batch. The scalar path needs neither."""
    code = (
        "import sys, suppression.e164 as e; "
        "print('phonenumbers' in sys.modules, 'numpy' in sys.modules, "
        "e.e164_reason(8613800138000).name, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "VALID", "False"]
