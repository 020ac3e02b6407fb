"""T-SQL subset parser fuzzing under the fuzz suite's profiles (ci / long).

The properties and seeds live in tests/dataserver/test_tsql_fuzz.py (its own bounded run: random text,
token soup, mutated real scripts; only TSQLSyntaxError may escape); this module runs its checker on
mutated seeds with this folder's budget, so ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q tests/fuzz/``
also gives the parser 20,000 examples.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fuzzing import FUZZ
from hypothesis import given

_spec = importlib.util.spec_from_file_location(
    "sybar_tsql_fuzz_checks", Path(__file__).resolve().parents[1] / "dataserver" / "test_tsql_fuzz.py")
_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_checks)


@FUZZ
@given(_checks.mutated())
def test_mutated_tsql(text):
    _checks.check(text)


def test_the_checker_accepts_its_seeds():
    for text in _checks.SEED_SQL[:5]:
        _checks.check(text)
