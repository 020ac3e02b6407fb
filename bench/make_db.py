#!/usr/bin/env python3
"""Fallback test database maker, used when ../shared/bench/make_db.py is absent.

Usage: python bench/make_db.py PATH [SIZE_MIB]

The same shape as the shared maker: an OLTP-like SQLite database (customers;
orders of about 1 KiB each, half repetitive text, a quarter random bytes) that
zstd level 1 compresses to roughly 40 %, generated inside SQLite with a
recursive CTE so 1 GiB takes well under a minute.
"""

from __future__ import annotations

import os
import sqlite3
import sys


def make(path: str, size_mib: int) -> None:
    if os.path.exists(path):
        os.remove(path)
    rows = size_mib * 1024 * 13 // 10  # orders rows of ~1 KiB
    customers = max(rows // 20, 1)
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA page_size = 4096;
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, created TEXT);
        CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT,
                            amount REAL, note TEXT, payload BLOB);
        CREATE INDEX orders_customer ON orders(customer_id);
        """
    )
    con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO customer SELECT i, 'customer-' || i, 'city-' || (i % 97), "
        "datetime(1700000000 + i * 37, 'unixepoch') FROM n",
        (customers,),
    )
    con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO orders SELECT i, abs(random()) % ?, "
        "CASE i % 4 WHEN 0 THEN 'NEW' WHEN 1 THEN 'PAID' WHEN 2 THEN 'SHIPPED' ELSE 'CLOSED' END, "
        "(i % 100000) / 100.0, "
        "printf('%.*c', 300 + i % 200, 'x') || ' order ' || i || ' for customer ' || (i % 5000), "
        "randomblob(256) FROM n",
        (rows, customers),
    )
    con.commit()
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()


if __name__ == "__main__":
    target = sys.argv[1]
    make(target, int(sys.argv[2]) if len(sys.argv) > 2 else 256)
    print(f"{target}: {os.path.getsize(target) / 2**20:.0f} MiB")
