"""Shared fixtures; the helpers they use live in sybar_testkit.py."""

from __future__ import annotations

import pytest
from sybar_testkit import start_serve, stop_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_serve(tmp_path_factory.mktemp("home"))
    yield s
    stop_serve(s)
