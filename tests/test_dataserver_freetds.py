"""The dataserver driven by real clients over TDS 5.0: FreeTDS fisql and tsql, and sybar isql."""

from __future__ import annotations

import re

from sybar_testkit import integrity, table_digest


def test_login_ok_and_failed_with_fisql(served):
    ok = served.fisql("select @@servername\ngo\n")
    assert "SYBAR" in ok.stdout, ok.stdout + ok.stderr
    bad = served.fisql("select 1\ngo\n", password="wrong-password")
    text = bad.stdout + bad.stderr
    assert "Login failed" in text
    assert bad.returncode != 0


def test_login_ok_and_failed_with_tsql(served):
    ok = served.tsql("select @@version\ngo\nexit\n")
    assert "sybar dataserver" in ok.stdout, ok.stdout + ok.stderr
    bad = served.tsql("select 1\ngo\nexit\n", password="nope")
    assert "Login failed" in bad.stdout + bad.stderr


def test_create_insert_select_typed_columns_and_nulls(served, client):
    r = client(
        f"create database typedb_{client.tag}\ngo\nuse typedb_{client.tag}\ngo\n"
        "create table t (id int not null, name varchar(20) null, price float null, born datetime null)\ngo\n"
        "insert into t values (1, 'alpha', 1.5, '2024-02-29 13:45:10')\n"
        "insert into t values (2, NULL, NULL, NULL)\n"
        "insert into t values (-7, 'gamma', -0.25, '1999-12-31 23:59:59')\ngo\n"
        "select id, name, price, born from t order by id\ngo\n"
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "alpha" in out and "gamma" in out
    assert re.search(r"\bNULL\b", out), out
    assert "-7" in out and "1.5" in out and "-0.25" in out
    # a real datetime column: FreeTDS formats it itself
    assert re.search(r"Feb 29 2024", out), out
    assert "(3 rows affected)" in out


def test_tsql_sees_same_rows(served):
    served.fisql("create database tsqldb\ngo\nuse tsqldb\ngo\ncreate table k(a int, b varchar(10))\ngo\n"
                 "insert into k values (42, 'forty-two')\ngo\n")
    r = served.tsql("use tsqldb\ngo\nselect a, b from k\ngo\nexit\n")
    assert "42" in r.stdout and "forty-two" in r.stdout, r.stdout + r.stderr


def test_errors_are_msg_lines(served, client):
    r = client("select * from no_such_table\ngo\nselect a from where\ngo\nselec 1\ngo\n")
    out = r.stdout + r.stderr
    assert re.search(r"Msg 208, Level 16, State \d+", out), out
    assert "no_such_table not found" in out
    assert re.search(r"Msg 102, Level 15", out), out
    assert "Stored procedure 'selec' not found" in out  # a bare word starting a batch is a procedure call


def test_getdate_is_a_datetime(served, client):
    import datetime as dt

    out = client("select getdate()\ngo\n").stdout
    # a real datetime reaches the client, which formats it its own way (e.g. 'Nov 25 2026 10:42AM')
    assert dt.datetime.now().strftime("%b") in out and str(dt.datetime.now().year) in out, out
    assert "strftime" not in out, out  # an unnamed expression has an empty header, as on ASE


def test_control_of_flow_and_error_checks(served, client):
    out = client(
        "declare @i int\nselect @i = 0\nwhile @i < 3\nbegin\n  print 'pass %1!', @i\n  select @i = @i + 1\nend\n"
        "if @i = 3 print 'loop done' else print 'loop wrong'\ngo\n"
        "dump database no_such_db to '/tmp/never.dmp'\nif @@error != 0 print 'dump failed, as a script checks'\n"
        "go\nraiserror 20001 'custom %1!', 'message'\ngo\n").stdout
    assert "pass 0" in out and "pass 2" in out and "pass 3" not in out, out
    assert "loop done" in out and "loop wrong" not in out
    assert "Msg 911" in out and "dump failed, as a script checks" in out
    assert "Msg 20001" in out and "custom message" in out


def test_print_is_plain_text(served, client):
    r = client("print 'hello from the dataserver'\ngo\n")
    assert "hello from the dataserver" in r.stdout + r.stderr
    assert "Msg" not in r.stdout


def test_sp_helpdb_lists_databases_and_status(served, client):
    t = client.tag
    client(f"create database helpdb1_{t}\ngo\ncreate database helpdb2_{t} for load\ngo\n")
    r = client(f"sp_helpdb\ngo\nsp_helpdb helpdb2_{t}\ngo\n")
    out = r.stdout
    assert "master" in out and f"helpdb1_{t}" in out
    assert "for load" in out
    assert "no options set" in out


def test_unknown_database_and_duplicate_create(served, client):
    r = client(f"use nowhere\ngo\ncreate database dupdb_{client.tag}\ngo\ncreate database dupdb_{client.tag}\ngo\n")
    out = r.stdout + r.stderr
    assert "Msg 911" in out
    assert "Msg 1801" in out and "already exists" in out


def test_many_concurrent_sessions(served):
    import concurrent.futures as cf

    served.fisql("create database conc\ngo\nuse conc\ngo\ncreate table c(n int)\ngo\n")

    def one(i: int) -> str:
        return served.fisql(f"use conc\ngo\ninsert into c values ({i})\ngo\nselect count(*) from c\ngo\n").stdout

    with cf.ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(one, range(24)))
    assert all("Msg" not in o for o in outs)
    final = served.fisql("use conc\ngo\nselect count(*) from c\ngo\n").stdout
    assert re.search(r"\b24\b", final), final


def test_login_with_sybar_isql_keyring_and_wrong_password(served, sa_in_keyring):
    ok = served.sybar_isql("select @@servername\ngo\n")  # no -P: the keyring has it
    assert "SYBAR" in ok.stdout and ok.returncode == 0, ok.stdout + ok.stderr
    bad = served.sybar_isql("select 1\ngo\n", password="wrong-password")
    assert "Login failed" in bad.stdout + bad.stderr
    assert bad.returncode != 0


def test_striped_dump_during_inserts_loads_exact_snapshot(served, client, tmp_path):
    """4 stripes, another session (tsql) inserting throughout; the load holds exactly a committed prefix."""
    import subprocess
    import threading
    import time

    db, copy_db = f"busydb_{client.tag}", f"busycopy_{client.tag}"
    client(
        f"create database {db}\ngo\nuse {db}\ngo\n"
        "create table orders(id int primary key, note varchar(200), amount float)\ngo\n"
        "create table audit(id int primary key, what varchar(20))\ngo\n"
    )
    bulk = "".join(
        f"insert into orders values ({i}, 'bulk row {i} ' || '{'x' * 150}', {i} * 1.25)\n"
        for i in range(1, 2001)
    )
    assert "Msg" not in client(f"use {db}\ngo\n" + bulk + "go\n").stdout

    stop = threading.Event()
    inserter = subprocess.Popen(
        ["tsql", "-S", "SYBAR", "-U", "sa", "-P", served.password],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=served.env,
    )
    inserter.stdin.write(f"use {db}\ngo\n")

    def feed():
        i = 100000
        while not stop.is_set():
            i += 1
            # one transaction touching both tables: a consistent dump has both or neither
            inserter.stdin.write(
                f"begin tran insert into orders values ({i}, 'live {i}', {i}) "
                f"insert into audit values ({i}, 'live') commit tran\ngo\n"
            )
            inserter.stdin.flush()
            time.sleep(0.002)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(1.0)
    stripes = [tmp_path / f"busy.s{i}" for i in range(4)]
    devices = f'to "{stripes[0]}" ' + " ".join(f'stripe on "{p}"' for p in stripes[1:])
    before = table_digest(served.db_file(db), "audit")[0]
    dump = client(f"dump database {db} {devices} with compression = 101\ngo\n")
    after = table_digest(served.db_file(db), "audit")[0]
    time.sleep(0.5)
    stop.set()
    feeder.join()
    inserter.stdin.write("exit\n")
    inserter.stdin.close()
    inserter.wait(timeout=30)
    out = dump.stdout + dump.stderr
    assert f"DUMP is complete (database {db})" in out, out
    assert "Msg" not in out, out
    assert re.search(r"stripe 4 of 4", out), out
    assert all(p.stat().st_size > 0 for p in stripes)

    load = client(
        f"create database {copy_db} for load\ngo\n"
        f"load database {copy_db} from \"{stripes[0]}\" "
        + " ".join(f'stripe on "{p}"' for p in stripes[1:]) + "\ngo\n"
        f"online database {copy_db}\ngo\n"
    )
    lout = load.stdout + load.stderr
    assert f"LOAD is complete (database {copy_db})" in lout, lout
    assert "Msg" not in lout, lout

    copy = served.db_file(copy_db)
    assert integrity(copy) == "ok"
    n_audit, _ = table_digest(copy, "audit")
    # the snapshot is a committed prefix taken during the dump
    assert before <= n_audit <= after, (before, n_audit, after)
    final = table_digest(served.db_file(db), "audit")[0]
    assert n_audit < final, "the inserter kept writing after the snapshot"
    # exactly the committed rows: both tables agree, and match the source's first rows
    max_id = 100000 + n_audit
    assert table_digest(copy, "orders") == table_digest(served.db_file(db), "orders", f"where id <= {max_id}")
    assert table_digest(copy, "audit") == table_digest(served.db_file(db), "audit", f"where id <= {max_id}")
    sel = client(f"use {copy_db}\ngo\nselect count(*) from audit\ngo\n")
    assert re.search(rf"\b{n_audit}\b", sel.stdout), sel.stdout
