"""Restore plans: the images and the exact statements of `sybar restore --plan`
(full dump, log dumps in order, the last one with until_time, online)."""

from __future__ import annotations

import calendar
import os
import time

import pytest

from engine.agent.plan import RestorePlan, format_plan, parse_time, plan_restore
from engine.catalog.catalog import Catalog, Image
from engine.dataserver import tsql
from engine.jobs.status import INVALID_PARAMETER, NO_ENTITY, RESTORE_ERROR, StatusError

T0 = float(calendar.timegm((2026, 9, 21, 10, 0, 0)))  # 2026-09-21 10:00:00 UTC


@pytest.fixture(autouse=True)
def utc():
    """Local time is UTC here, so that the times in the statements are known."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    yield c
    c.close()


def record(cat, dump_type: str, when: float, stripes: int, tag: str, **facts) -> Image:
    im = cat.begin_image(client="dbhost", dataserver="SYBAR", database="mydb", dump_type=dump_type,
                         stripes=stripes, backup_time=when, instance_id="mydb-1", **facts)  # fmt: skip
    for s in range(stripes):
        cat.add_object(im.backup_id, stripe=s, name=f"SYBAR.mydb.{dump_type}.{s}.4242.{tag}",
                       storage_unit="disk1", bytes=100)  # fmt: skip
    return cat.commit_image(im.backup_id)


@pytest.fixture
def chain(cat):
    """A 2-stripe full dump at 10:00 (LSN 100), then three log dumps at 10:15,
    10:30 (2 stripes) and 10:45, holding LSNs 1-130, 131-160 and 161-190."""
    d = record(cat, "D", T0, 2, "21-09-2026.10:00:00", lsn=100)
    t1 = record(cat, "T", T0 + 900, 1, "21-09-2026.10:15:00", first_lsn=1, last_lsn=130,
                first_commit=T0 - 3000, last_commit=T0 + 890.5)  # fmt: skip
    t2 = record(cat, "T", T0 + 1800, 2, "21-09-2026.10:30:00", first_lsn=131, last_lsn=160,
                first_commit=T0 + 905.125, last_commit=T0 + 1795)  # fmt: skip
    t3 = record(cat, "T", T0 + 2700, 1, "21-09-2026.10:45:00", first_lsn=161, last_lsn=190,
                first_commit=T0 + 1810, last_commit=T0 + 2690)  # fmt: skip
    return d, t1, t2, t3


def test_statements_are_exact(cat, chain):
    d, t1, t2, t3 = chain
    until = parse_time("2026-09-21 10:40:00.250")
    plan = plan_restore(cat, d.backup_id, until=until, target="mydb_copy", target_exists=False)
    assert isinstance(plan, RestorePlan)
    assert (plan.target, plan.until, plan.create_target) == ("mydb_copy", until, True)
    assert [i.backup_id for i in plan.images] == [d.backup_id, t1.backup_id, t2.backup_id, t3.backup_id]
    assert plan.statements == [
        "create database mydb_copy for load",
        "load database mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.D.0.4242.21-09-2026.10:00:00"\n'
        '    stripe on "sybackup::SYBAR.mydb.D.1.4242.21-09-2026.10:00:00"',
        'load transaction mydb_copy\n    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:15:00"',
        "load transaction mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:30:00"\n'
        '    stripe on "sybackup::SYBAR.mydb.T.1.4242.21-09-2026.10:30:00"',
        "load transaction mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:45:00"\n'
        "    with until_time = '2026-09-21 10:40:00.250'",
        "online database mydb_copy",
    ]


def test_format_plan_is_exact_and_pasteable(cat, chain):
    d, t1, t2, t3 = chain
    plan = plan_restore(cat, d.backup_id, until=parse_time("2026-09-21 10:40:00.250"), target="mydb_copy",
                        target_exists=False)  # fmt: skip
    text = format_plan(plan)
    assert text == (
        f"-- Restore of mydb_copy (dumped as mydb) from full dump {d.backup_id}, as of 2026-09-21 10:40:00.250"
        " (dataserver local time)\n"
        "-- 4 images (1 full dump, 3 log dumps), in load order:\n"
        f"--   1. full dump {d.backup_id}, taken 2026-09-21 10:00:00.000, LSN 100, 2 stripes\n"
        f"--   2. log dump {t1.backup_id}, taken 2026-09-21 10:15:00.000, LSNs 1-130, commits 2026-09-21"
        " 09:10:00.000 to 2026-09-21 10:14:50.500, 1 stripe\n"
        f"--   3. log dump {t2.backup_id}, taken 2026-09-21 10:30:00.000, LSNs 131-160, commits 2026-09-21"
        " 10:15:05.125 to 2026-09-21 10:29:55.000, 2 stripes\n"
        f"--   4. log dump {t3.backup_id}, taken 2026-09-21 10:45:00.000, LSNs 161-190, commits 2026-09-21"
        " 10:30:10.000 to 2026-09-21 10:44:50.000, 1 stripe\n"
        "-- The last log dump is applied up to 2026-09-21 10:40:00.250.\n"
        "-- mydb_copy does not exist: it is created for load first.\n"
        "create database mydb_copy for load\n"
        "go\n"
        "load database mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.D.0.4242.21-09-2026.10:00:00"\n'
        '    stripe on "sybackup::SYBAR.mydb.D.1.4242.21-09-2026.10:00:00"\n'
        "go\n"
        "load transaction mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:15:00"\n'
        "go\n"
        "load transaction mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:30:00"\n'
        '    stripe on "sybackup::SYBAR.mydb.T.1.4242.21-09-2026.10:30:00"\n'
        "go\n"
        "load transaction mydb_copy\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:45:00"\n'
        "    with until_time = '2026-09-21 10:40:00.250'\n"
        "go\n"
        "online database mydb_copy\n"
        "go\n"
    )
    # what isql makes of it: one batch per statement, the listing as comments
    batches = tsql.split_batches(text)
    assert len(batches) == len(plan.statements)
    parsed = [tsql.parse_batch(b.text)[0] for b, _ in batches]
    kinds = [type(s).__name__ for s in parsed]
    assert kinds == ["CreateDatabase", "LoadDatabase", "LoadTransaction", "LoadTransaction", "LoadTransaction",
                     "OnlineDatabase"]  # fmt: skip
    assert [d.spec for d in parsed[1].devices] == [f"sybackup::{n}" for n in d.object_names()]
    assert [d.spec for d in parsed[3].devices] == [f"sybackup::{n}" for n in t2.object_names()]
    assert parsed[4].options["until_time"] == "2026-09-21 10:40:00.250"
    assert "until_time" not in parsed[2].options and "until_time" not in parsed[3].options


def test_until_picks_the_log_dumps_it_needs(cat, chain):
    d, t1, t2, t3 = chain
    plan = plan_restore(cat, d.backup_id, until=T0 + 600, target=None, target_exists=True)
    assert plan.target == "mydb" and not plan.create_target
    assert [i.backup_id for i in plan.images] == [d.backup_id, t1.backup_id]
    assert plan.statements == [
        "load database mydb\n"
        '    from "sybackup::SYBAR.mydb.D.0.4242.21-09-2026.10:00:00"\n'
        '    stripe on "sybackup::SYBAR.mydb.D.1.4242.21-09-2026.10:00:00"',
        "load transaction mydb\n"
        '    from "sybackup::SYBAR.mydb.T.0.4242.21-09-2026.10:15:00"\n'
        "    with until_time = '2026-09-21 10:10:00.000'",
        "online database mydb",
    ]
    assert format_plan(plan).startswith(f"-- Restore of mydb from full dump {d.backup_id}, as of 2026-09-21 ")
    # the last commit of t2 exactly: t3 is not needed
    plan = plan_restore(cat, d.backup_id, until=T0 + 1795, target=None, target_exists=True)
    assert [i.backup_id for i in plan.images] == [d.backup_id, t1.backup_id, t2.backup_id]


def test_without_until_every_log_dump_and_no_until_time(cat, chain):
    d = chain[0]
    plan = plan_restore(cat, d.backup_id, until=None, target="copy2", target_exists=True)
    assert len(plan.images) == 4 and plan.until is None
    assert [s.split("\n")[0] for s in plan.statements] == ["load database copy2"] + [
        "load transaction copy2"
    ] * 3 + ["online database copy2"]
    assert not any("until_time" in s for s in plan.statements)
    text = format_plan(plan)
    assert "as late as its log dumps go" in text and "applied up to" not in text
    assert text.count("\ngo\n") == 5


def test_a_full_dump_alone(cat):
    d = record(cat, "D", T0, 1, "x", lsn=7)
    plan = plan_restore(cat, d.backup_id, until=None, target=None, target_exists=False)
    assert plan.statements == [
        "create database mydb for load",
        'load database mydb\n    from "sybackup::SYBAR.mydb.D.0.4242.x"',
        "online database mydb",
    ]
    assert "-- 1 image (1 full dump, 0 log dumps), in load order:" in format_plan(plan)
    # until at the full dump's own time: nothing to roll forward
    plan = plan_restore(cat, d.backup_id, until=T0, target=None, target_exists=False)
    assert len(plan.images) == 1 and not any("until_time" in s for s in plan.statements)


def test_plans_that_cannot_be_made(cat, chain):
    d, t1, t2, t3 = chain
    e = pytest.raises(StatusError, plan_restore, cat, "nosuch_0000000001", until=None, target=None,
                      target_exists=False).value  # fmt: skip
    assert e.status == NO_ENTITY
    e = pytest.raises(StatusError, plan_restore, cat, t2.backup_id, until=None, target=None,
                      target_exists=False).value  # fmt: skip
    assert e.status == RESTORE_ERROR and "log dump" in str(e)
    e = pytest.raises(StatusError, plan_restore, cat, d.backup_id, until=None, target="bad-name",
                      target_exists=False).value  # fmt: skip
    assert e.status == RESTORE_ERROR and "not a valid database name" in str(e)
    e = pytest.raises(StatusError, plan_restore, cat, d.backup_id, until=T0 - 1, target=None,
                      target_exists=False).value  # fmt: skip
    assert e.status == RESTORE_ERROR and "2026-09-21 10:00:00.000" in str(e)
    e = pytest.raises(StatusError, plan_restore, cat, d.backup_id, until=T0 + 2691, target=None,
                      target_exists=False).value  # fmt: skip
    assert e.status == RESTORE_ERROR and "the chain ends at 2026-09-21 10:44:50.000" in str(e)


def test_parse_time():
    assert parse_time("2026-09-21 10:40:00") == T0 + 2400
    assert parse_time("2026-09-21 10:40:00.250") == T0 + 2400.25
    assert parse_time("2026-09-21 10:40:00.5") == T0 + 2400.5
    assert parse_time(" 2026-09-21 10:40:00.007 ") == T0 + 2400.007
    assert parse_time("2026-09-21T10:40:00") == T0 + 2400
    for bad in ("2026-09-21", "10:40:00", "2026-09-21 10:40", "2026-09-21 10:40:00.1234", "yesterday", "",
                "2026-02-30 10:00:00", "2026-09-21 25:00:00"):  # fmt: skip
        with pytest.raises(StatusError) as e:
            parse_time(bad)
        assert e.value.status == INVALID_PARAMETER and "YYYY-MM-DD hh:mm:ss[.fff]" in str(e.value), bad


def test_times_round_trip_through_the_statement(cat, chain):
    d = chain[0]
    for text in ("2026-09-21 10:15:05.125", "2026-09-21 10:29:54.999", "2026-09-21 10:20:00.001"):
        plan = plan_restore(cat, d.backup_id, until=parse_time(text), target=None, target_exists=True)
        assert plan.statements[-2].endswith(f"with until_time = '{text}'")
