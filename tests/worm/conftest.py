"""A real `sybar serve` whose home has a WORM storage unit (worm1) beside the plain disk1.

Policies: Sybase_ASE (the default) -> disk1, two weeks; Locked -> worm1, one hour;
Brief -> worm1, a few seconds (so a test can see an unlock time pass).
"""

from __future__ import annotations

import pytest
from worm_kit import WORM_TOML, make_database, start_worm_home


@pytest.fixture(scope="session")
def worm_served(tmp_path_factory):
    from sybar_testkit import stop_serve

    served = start_worm_home(tmp_path_factory.mktemp("wormhome"), WORM_TOML)
    try:
        make_database(served, "wdb")
        yield served
    finally:
        stop_serve(served)
