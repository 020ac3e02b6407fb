"""Demo content: an OLTP-shaped database made inside SQLite in seconds.

The shape follows shared/bench/make_db.py (customers, orders with repetitive
text and some incompressible bytes), so demos and benchmarks see the same kind
of data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def fill_demo_database(path: Path, size_mb: int) -> None:
    rows = max(size_mb * 1024 * 13 // 10, 100)
    customers = max(rows // 20, 1)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("pragma journal_mode = wal")
        con.executescript(
            """
            begin;
            create table customer(id integer primary key, name varchar(40), city varchar(20), created datetime);
            create table orders(id integer primary key, customer_id int, status varchar(10),
                                amount float, note varchar(600), payload varbinary(256));
            create index orders_customer on orders(customer_id);
            """
        )
        con.execute(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) "
            "insert into customer select i, 'customer-' || i, 'city-' || (i % 97), "
            "datetime(1700000000 + i * 37, 'unixepoch') from n",
            (customers,),
        )
        con.execute(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) "
            "insert into orders select i, abs(random()) % ?, "
            "case i % 4 when 0 then 'NEW' when 1 then 'PAID' when 2 then 'SHIPPED' else 'CLOSED' end, "
            "(i % 100000) / 100.0, "
            "printf('%.*c', 300 + i % 200, 'x') || ' order ' || i || ' for customer ' || (i % 5000), "
            "randomblob(256) from n",
            (rows, customers),
        )
        con.execute("commit")
        con.execute("pragma wal_checkpoint(truncate)")
    finally:
        con.close()
