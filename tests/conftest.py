"""Shared fixtures; the helpers they use live in sybar_testkit.py."""

from __future__ import annotations

import pytest
from sybar_testkit import keep_sa_password_in_keyring, start_serve, stop_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_serve(tmp_path_factory.mktemp("home"))
    yield s
    stop_serve(s)


@pytest.fixture(scope="session")
def sa_in_keyring():
    """sa's password in the real Secret Service (tools/test runs the suite with one)."""
    keep_sa_password_in_keyring()


@pytest.fixture(params=["fisql", "sybar-isql"])
def client(request, served, sa_in_keyring):
    """Run the same SQL through FreeTDS fisql and through sybar isql."""
    name = request.param

    def run(sql: str, **kw):
        return served.run("fisql" if name == "fisql" else "isql", sql, **kw)

    run.name = name
    run.tag = "f" if name == "fisql" else "i"  # keeps database names apart per client
    return run
