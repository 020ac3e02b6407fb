"""What the catalog browser asks of the catalog beyond plain listings: the distinct servers, clients
and databases (a skip-scan, so a big catalog answers at once), counts, and oldest-first pages that are
exactly the newest-first ones reversed (the browser fetches pages past the middle that way)."""

from __future__ import annotations

import pytest
from test_catalog_images import T0, backup

from engine.catalog.catalog import Catalog


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "home" / "catalog.db")
    for i, (db, client, server) in enumerate([("mydb", "hostb", "SYB1"), ("hr", "hosta", "SYB2"),
                                              ("mydb", "hosta", "SYB1"), ("sales", "hostc", "SYB1")]):
        backup(c, database=db, client=client, dataserver=server, when=T0 + i * 60, pid=100 + i)
    backup(c, database="pending_db", client="hostz", dataserver="SYBZ", when=T0 + 600, pid=99, commit=False)
    yield c
    c.close()


def test_distinct_values_list_what_complete_images_hold_sorted(cat):
    assert cat.distinct_values("dataserver") == ["SYB1", "SYB2"]      # the pending image's server is not offered
    assert cat.distinct_values("client") == ["hosta", "hostb", "hostc"]
    assert cat.distinct_values("database") == ["hr", "mydb", "sales"]
    with pytest.raises(ValueError):
        cat.distinct_values("backup_id; drop table images")


def test_oldest_first_pages_are_newest_first_reversed(cat):
    newest = [i.backup_id for i in cat.list_images()]
    oldest = [i.backup_id for i in cat.list_images(newest_first=False)]
    assert oldest == newest[::-1] and len(newest) == 4 == cat.count_images()
    # the browser's last page, asked from the oldest end: rows 2..3 of the newest-first order
    assert [i.backup_id for i in cat.list_images(newest_first=False, limit=2, offset=0)][::-1] == newest[2:]
    assert cat.count_images(dataserver="SYB1", client="hosta") == 1
