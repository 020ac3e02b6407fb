"""Log chains in the catalog: follows links, log_chain, restore_chain,
restorable_spans, latest_full.

``Lineage`` simulates one database's transaction log and records its dumps in
a catalog the way the dataserver does (LSNs, commit times, lineages,
truncations); the other test_catalog_chains_* modules import it.
"""

from __future__ import annotations

import itertools
import random

import pytest

from engine.catalog.catalog import Catalog, Image
from engine.catalog.chains import Gap, latest_full, log_chain, restorable_spans, restore_chain
from engine.jobs.status import NO_ENTITY, RESTORE_ERROR, StatusError

T0 = 1_790_000_000.0  # 2026-09-21

_names = itertools.count()


class Lineage:
    """One database's log: commit() adds transactions, full() and log() dump."""

    def __init__(
        self,
        cat: Catalog,
        database: str = "mydb",
        instance: object = "i1",
        t: float = T0,
        dataserver: str = "SYBAR",
    ):
        self.cat = cat
        self.database = database
        self.dataserver = dataserver
        self.instance = instance
        self.t = t
        self.lsn = 0  # the last committed LSN
        self.truncated = 0  # everything up to here left the log (dumped or truncated)
        self.commit_time: dict[int, float] = {}

    def tick(self, dt: float = 10.0) -> float:
        self.t += dt
        return self.t

    def commit(self, n: int = 1, dt: float = 1.5) -> list[float]:
        """n transactions, dt seconds apart; returns their commit times."""
        out = []
        for _ in range(n):
            self.lsn += 1
            self.commit_time[self.lsn] = self.tick(dt)
            out.append(self.t)
        return out

    def _image(self, dump_type: str, stripes: int, **facts) -> Image:
        when = self.tick()
        im = self.cat.begin_image(
            client="dbhost", dataserver=self.dataserver, database=self.database, dump_type=dump_type,
            stripes=stripes, backup_time=when, policy="Sybase_ASE", schedule="Default-Application-Backup",
            schedule_type=2, storage_unit="disk1", instance_id=self.instance, **facts,
        )  # fmt: skip
        n = next(_names)
        for s in range(stripes):
            self.cat.add_object(
                im.backup_id, stripe=s, name=f"{self.dataserver}.{self.database}.{dump_type}.{s}.{n}.x",
                storage_unit="disk1", bytes=1000 + s, raw_bytes=4000, checksum=f"{s:016x}",
            )  # fmt: skip
        return self.cat.commit_image(im.backup_id)

    def full(self, stripes: int = 1) -> Image:
        return self._image("D", stripes, lsn=self.lsn)

    def log(self, stripes: int = 1, standby: bool = False) -> Image:
        first, last = self.truncated + 1, self.lsn
        self.truncated = last
        empty = last < first
        return self._image(
            "T", stripes, first_lsn=first, last_lsn=last,
            first_commit=None if empty else self.commit_time[first],
            last_commit=None if empty else self.commit_time[last], standby=standby,
        )  # fmt: skip

    def truncate_only(self, new_instance: object = None) -> None:
        self.truncated = self.lsn
        if new_instance is not None:
            self.instance = new_instance


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "home" / "catalog.db")
    yield c
    c.close()


def ids(images) -> list[str]:
    return [i.backup_id for i in images]


def error(fn, *args, **kw) -> StatusError:
    with pytest.raises(StatusError) as e:
        fn(*args, **kw)
    return e.value


# ---------------------------------------------------------------- follows


def test_chain_facts_are_recorded_and_follows_links_log_dumps(cat):
    db = Lineage(cat)
    db.commit(5)
    d1 = db.full(stripes=2)
    db.commit(3)
    t1 = db.log()  # LSNs 1-8: the first log dump holds d1's lsn + 1 = 6
    db.commit(2)
    t2 = db.log(standby=True)
    db.commit(1)
    d2 = db.full()
    db.commit(4)
    t3 = db.log()

    assert (d1.lsn, d1.instance_id, d1.first_lsn, d1.last_lsn, d1.follows) == (5, "i1", None, None, None)
    assert (t1.first_lsn, t1.last_lsn, t1.lsn) == (1, 8, None)
    assert t1.first_commit == db.commit_time[1] and t1.last_commit == db.commit_time[8]
    assert (t2.first_lsn, t2.last_lsn, t2.standby, t1.standby) == (9, 10, True, False)
    assert t1.follows == d1.backup_id
    assert t2.follows == t1.backup_id
    assert d2.follows is None and d2.lsn == 11
    assert t3.follows == t2.backup_id  # a full dump does not truncate the log: t3 continues t2

    j = t2.to_json()
    assert j["first_lsn"] == 9 and j["last_lsn"] == 10 and j["instance_id"] == "i1"
    assert j["follows"] == t1.backup_id and j["standby"] is True
    assert j["first_commit_unix"] == t2.first_commit and j["first_commit"].count(".") == 1
    assert d1.to_json()["lsn"] == 5 and d1.to_json()["follows"] is None
    # read back from the file, not just what commit_image returned
    again = cat.get_image(t2.backup_id)
    assert again == t2 and again.standby is True


def test_follows_a_full_dump_after_a_truncation_and_nothing_when_broken(cat):
    db = Lineage(cat)
    db.commit(3)
    db.full()
    db.commit(3)
    db.log()
    db.commit(2)
    db.truncate_only()  # same lineage, LSNs 7-8 in no dump
    db.commit(2)
    orphan = db.log()  # the dataserver refuses this one; the catalog links it to nothing
    assert (orphan.first_lsn, orphan.follows) == (9, None)
    db.commit(1)
    d2 = db.full()
    db.commit(2)
    t = db.log()
    assert t.follows == orphan.backup_id  # contiguous with the orphan (LSN 11 follows 10)

    db2 = Lineage(cat, database="other", t=db.t)
    db2.commit(4)
    db2.truncate_only()
    db2.commit(1)
    f = db2.full()
    db2.commit(2)
    t = db2.log()  # LSNs 5-7; the full dump's lsn 5 is inside: it follows the full dump
    assert t.follows == f.backup_id
    assert d2.follows is None


def test_other_databases_and_lineages_never_link(cat):
    a = Lineage(cat, database="a", instance=7)
    b = Lineage(cat, database="b", instance=7, t=T0 + 1)  # same instance id, other database
    a.commit(2)
    b.commit(2)
    da = a.full()
    db_ = b.full()
    a.commit(2)
    b.commit(2)
    ta = a.log()
    tb = b.log()
    assert ta.follows == da.backup_id and tb.follows == db_.backup_id
    assert ta.instance_id == 7 and isinstance(cat.get_image(ta.backup_id).instance_id, int)
    assert ids(log_chain(cat, da.backup_id).logs) == [ta.backup_id]


def test_empty_log_dumps_take_their_turn(cat):
    db = Lineage(cat)
    db.commit(2)
    d = db.full()
    db.commit(2)
    t1 = db.log()
    e = db.log()  # nothing committed since t1
    assert (e.first_lsn, e.last_lsn, e.first_commit, e.last_commit) == (5, 4, None, None)
    assert e.follows == t1.backup_id
    db.commit(2)
    t2 = db.log()
    assert t2.follows == e.backup_id
    chain = log_chain(cat, d.backup_id)
    assert ids(chain.logs) == [t1.backup_id, e.backup_id, t2.backup_id]
    assert chain.end_lsn == 6 and chain.end_time == t2.last_commit and chain.gaps == []


def test_chain_facts_given_at_commit_and_checked(cat):
    im = cat.begin_image(client="c", dataserver="S", database="d", dump_type="D", stripes=1, backup_time=T0)
    cat.add_object(im.backup_id, stripe=0, name="S.d.D.0.1.x", storage_unit="disk1", bytes=1)
    d = cat.commit_image(im.backup_id, lsn=40, instance_id="x")
    assert (d.lsn, d.instance_id) == (40, "x")
    im = cat.begin_image(
        client="c", dataserver="S", database="d", dump_type="T", stripes=1, backup_time=T0 + 9
    )
    cat.add_object(im.backup_id, stripe=0, name="S.d.T.0.1.x", storage_unit="disk1", bytes=1)
    t = cat.commit_image(im.backup_id, first_lsn=1, last_lsn=50, first_commit=T0 - 5, last_commit=T0 + 8,
                         instance_id="x", standby=True)  # fmt: skip
    assert (t.first_lsn, t.last_lsn, t.follows, t.standby) == (1, 50, d.backup_id, True)

    with pytest.raises(ValueError):
        cat.begin_image(client="c", dataserver="S", database="d", dump_type="D", stripes=1, first_lsn=3)
    with pytest.raises(ValueError):
        cat.begin_image(client="c", dataserver="S", database="d", dump_type="T", stripes=1, lsn=3)
    with pytest.raises(ValueError):
        cat.begin_image(
            client="c", dataserver="S", database="d", dump_type="T", stripes=1, first_lsn=9, last_lsn=5
        )
    im = cat.begin_image(client="c", dataserver="S", database="d", dump_type="T", stripes=1, first_lsn=9)
    cat.add_object(im.backup_id, stripe=0, name="S.d.T.0.2.x", storage_unit="disk1", bytes=1)
    with pytest.raises(ValueError):
        cat.commit_image(im.backup_id, last_lsn=2)
    assert cat.get_image(im.backup_id, include_pending=True).state == "pending"


# ---------------------------------------------------------------- log_chain / restore_chain


def test_log_chain_is_the_log_dumps_in_order_with_their_objects(cat):
    db = Lineage(cat)
    db.commit(4)
    old_log = db.log()  # before the full dump: not part of its chain
    db.commit(2)
    d = db.full(stripes=2)
    logs = []
    for n in range(3):
        db.commit(3)
        logs.append(db.log(stripes=n + 1))
    chain = log_chain(cat, d.backup_id)
    assert chain.full == d
    assert ids(chain.logs) == ids(logs) and old_log.backup_id not in ids(chain.logs)
    assert [len(i.objects) for i in chain.logs] == [1, 2, 3]
    assert chain.gaps == [] and chain.end_lsn == 15 and chain.end_time == logs[-1].last_commit
    assert ids(chain.images) == [d.backup_id, *ids(logs)]
    assert ids(restore_chain(cat, d.backup_id)) == ids(chain.images)
    assert all(len(i.objects) == i.stripes for i in restore_chain(cat, d.backup_id))
    assert chain.to_json()["end_lsn"] == 15


def test_until_selects_the_log_dumps_up_to_that_time(cat):
    db = Lineage(cat)
    db.commit(2)
    d = db.full()
    c1 = db.commit(3)
    t1 = db.log()
    c2 = db.commit(3)
    t2 = db.log()
    c3 = db.commit(3)
    t3 = db.log()
    f = d.backup_id
    assert ids(restore_chain(cat, f, d.backup_time)) == [f, t1.backup_id]
    assert ids(restore_chain(cat, f, c1[0])) == [f, t1.backup_id]
    assert ids(restore_chain(cat, f, c1[-1])) == [f, t1.backup_id]  # the last commit of t1 exactly
    assert ids(restore_chain(cat, f, c1[-1] + 0.001)) == [f, t1.backup_id, t2.backup_id]
    assert ids(restore_chain(cat, f, (c1[-1] + c2[0]) / 2)) == [f, t1.backup_id, t2.backup_id]
    assert ids(restore_chain(cat, f, c2[1])) == [f, t1.backup_id, t2.backup_id]
    assert ids(restore_chain(cat, f, c3[-1])) == [f, t1.backup_id, t2.backup_id, t3.backup_id]
    assert ids(restore_chain(cat, f, None)) == [f, t1.backup_id, t2.backup_id, t3.backup_id]
    images = restore_chain(cat, f, c2[1])
    assert [len(i.objects) for i in images] == [1, 1, 1]


def test_until_before_the_full_dump(cat):
    db = Lineage(cat)
    db.commit(2)
    d0 = db.full()
    c = db.commit(2)
    db.log()
    db.commit(2)
    d1 = db.full()
    e = error(restore_chain, cat, d1.backup_id, c[1])
    assert e.status == RESTORE_ERROR
    text = str(e)
    assert "the full dump was taken at" in text and "choose a later time or an older full dump" in text
    assert d0.backup_id in text and "reaches that time" in text  # an older full dump whose chain does
    text = str(error(restore_chain, cat, d1.backup_id, d1.backup_time - 0.5))
    assert "the full dump was taken at" in text and "reaches" not in text  # d0's chain ends before
    # no older full dump: no suggestion
    e = error(restore_chain, cat, d0.backup_id, d0.backup_time - 1)
    assert "choose a later time or an older full dump." in str(e)


def test_until_beyond_the_chain(cat):
    db = Lineage(cat)
    db.commit(2)
    d = db.full()
    e = error(restore_chain, cat, d.backup_id, d.backup_time + 1)
    assert e.status == RESTORE_ERROR and "no log dump after" in str(e) and "yet" in str(e)
    assert ids(restore_chain(cat, d.backup_id, d.backup_time)) == [d.backup_id]  # the full dump alone
    c = db.commit(3)
    t = db.log()
    db.commit(2)  # committed, not dumped yet
    e = error(restore_chain, cat, d.backup_id, db.t)
    text = str(e)
    assert "the chain ends at" in text and t.backup_id in text and "no log dump after" in text
    assert ids(restore_chain(cat, d.backup_id, c[-1])) == [d.backup_id, t.backup_id]


def test_a_gap_stops_the_chain(cat):
    db = Lineage(cat)
    db.commit(2)
    d = db.full()
    c1 = db.commit(3)
    t1 = db.log()
    db.commit(3)
    t2 = db.log()
    c3 = db.commit(3)
    t3 = db.log()
    assert cat.remove_image(t2.backup_id)  # expired, or removed by hand
    chain = log_chain(cat, d.backup_id)
    assert ids(chain.logs) == [t1.backup_id]
    assert chain.gaps == [Gap(t1.backup_id, 6, 8, t3.backup_id)]
    assert chain.end_lsn == 5 and chain.end_time == c1[-1]
    assert ids(restore_chain(cat, d.backup_id, c1[1])) == [d.backup_id, t1.backup_id]
    e = error(restore_chain, cat, d.backup_id, c3[0])
    text = str(e)
    assert e.status == RESTORE_ERROR
    assert "the chain ends at" in text and "LSNs 6-8 is missing" in text
    assert t1.backup_id in text and t3.backup_id in text
    # the gap right after the full dump
    assert cat.remove_image(t1.backup_id)
    chain = log_chain(cat, d.backup_id)
    assert chain.logs == [] and chain.gaps == [Gap(d.backup_id, 3, 8, t3.backup_id)]
    assert chain.end_time == d.backup_time


def test_the_chain_continues_across_later_full_dumps(cat):
    db = Lineage(cat)
    db.commit(2)
    d1 = db.full()
    db.commit(2)
    t1 = db.log()
    db.commit(2)
    t2 = db.log()
    d2 = db.full()  # nothing committed since t2: d2's lsn is t2's last LSN
    c3 = db.commit(2)
    t3 = db.log()
    db.commit(2)
    d3 = db.full()
    c4 = db.commit(2)
    t4 = db.log()
    assert d2.lsn == t2.last_lsn
    assert ids(log_chain(cat, d1.backup_id).logs) == ids([t1, t2, t3, t4])
    assert ids(log_chain(cat, d2.backup_id).logs) == ids([t3, t4])  # t3 starts at d2's lsn + 1
    assert ids(log_chain(cat, d3.backup_id).logs) == ids([t4])  # t4 holds d3's lsn + 1
    assert ids(restore_chain(cat, d1.backup_id, c4[0])) == ids([d1, t1, t2, t3, t4])
    assert ids(restore_chain(cat, d2.backup_id, c3[0])) == ids([d2, t3])
    assert latest_full(cat, "mydb").backup_id == d3.backup_id
    assert latest_full(cat, "mydb", before=d2.backup_time).backup_id == d2.backup_id
    assert latest_full(cat, "mydb", before=d2.backup_time - 0.1).backup_id == d1.backup_id
    assert latest_full(cat, "mydb", before=d1.backup_time - 1) is None
    assert latest_full(cat, "nodb") is None


def test_truncate_only_with_a_new_lineage(cat):
    db = Lineage(cat)
    db.commit(2)
    d1 = db.full()
    c1 = db.commit(2)
    t1 = db.log()
    db.commit(2)
    db.truncate_only(new_instance="i2")
    db.commit(1)
    d2 = db.full()
    c2 = db.commit(2)
    t2 = db.log()
    assert t2.follows == d2.backup_id and t2.instance_id == "i2"
    chain = log_chain(cat, d1.backup_id)
    assert ids(chain.logs) == [t1.backup_id] and chain.gaps == []
    assert ids(log_chain(cat, d2.backup_id).logs) == [t2.backup_id]
    assert ids(restore_chain(cat, d1.backup_id, c1[-1])) == ids([d1, t1])
    e = error(restore_chain, cat, d1.backup_id, c2[0])
    text = str(e)
    assert "lineage of mydb changed" in text and d2.backup_id in text
    assert "reaches that time" in text  # d2 is suggested: its chain reaches c2[0]
    assert ids(restore_chain(cat, d2.backup_id, c2[0])) == ids([d2, t2])


def test_truncate_only_in_the_same_lineage_is_a_gap(cat):
    db = Lineage(cat)
    db.commit(2)
    d1 = db.full()
    db.commit(2)
    t1 = db.log()
    db.commit(2)  # LSNs 5-6: truncated, in no dump
    db.truncate_only()
    db.commit(1)
    d2 = db.full()
    c = db.commit(2)
    t2 = db.log()
    chain = log_chain(cat, d1.backup_id)
    assert ids(chain.logs) == [t1.backup_id]
    assert chain.gaps == [Gap(t1.backup_id, 5, 6, t2.backup_id)]
    assert ids(log_chain(cat, d2.backup_id).logs) == [t2.backup_id]
    text = str(error(restore_chain, cat, d1.backup_id, c[0]))
    assert "LSNs 5-6 is missing" in text and d2.backup_id in text


def test_images_without_chain_facts_restore_as_dumped(cat):
    im = cat.begin_image(client="c", dataserver="S", database="d", dump_type="D", stripes=1, backup_time=T0)
    cat.add_object(im.backup_id, stripe=0, name="S.d.D.0.9.x", storage_unit="disk1", bytes=1)
    d = cat.commit_image(im.backup_id)
    chain = log_chain(cat, d.backup_id)
    assert chain.logs == [] and chain.end_lsn is None and chain.end_time == T0
    assert ids(restore_chain(cat, d.backup_id)) == [d.backup_id]
    text = str(error(restore_chain, cat, d.backup_id, T0 + 60))
    assert "without a log sequence number" in text


def test_unknown_images_and_log_dumps_are_refused(cat):
    db = Lineage(cat)
    db.commit(2)
    db.full()
    db.commit(2)
    t = db.log()
    assert error(restore_chain, cat, "nosuch_0000000001").status == NO_ENTITY
    assert error(log_chain, cat, "nosuch_0000000001").status == NO_ENTITY
    e = error(restore_chain, cat, t.backup_id)
    assert e.status == RESTORE_ERROR and "log dump" in str(e) and "full dump" in str(e)


# ---------------------------------------------------------------- spans


def test_restorable_spans(cat):
    db = Lineage(cat)
    db.commit(2)
    d1 = db.full()
    db.commit(2)
    db.log()
    db.commit(2)
    t2 = db.log()
    db.commit(2)
    d2 = db.full()
    db.commit(2)
    t3 = db.log()
    db.commit(2)
    db.truncate_only(new_instance="i2")
    db.commit(2)
    d3 = db.full()
    d4 = db.full()
    other = Lineage(cat, database="other", t=db.t)
    other.commit(2)
    other.full()

    spans = restorable_spans(cat, "mydb")
    assert [s.full_backup_id for s in spans] == ids([d1, d2, d3, d4])
    assert [(s.start, s.end) for s in spans] == [
        (d1.backup_time, t3.last_commit),
        (d2.backup_time, t3.last_commit),
        (d3.backup_time, d3.backup_time),
        (d4.backup_time, d4.backup_time),
    ]
    assert t2.last_commit < t3.last_commit
    assert spans[0].to_json()["full_backup_id"] == d1.backup_id
    assert restorable_spans(cat, "nodb") == []


def test_spans_agree_with_chains_on_random_histories(cat):
    """Random histories of commits, dumps, truncations, reloads and removed log
    dumps: restorable_spans (one pass) and log_chain (per full dump) agree, and
    every chain is contiguous."""
    rng = random.Random(4)
    db = Lineage(cat)
    instances = itertools.count(2)
    logs: list[Image] = []
    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            db.commit(rng.randint(1, 4))
        elif op < 0.55:
            db.full()
        elif op < 0.9:
            logs.append(db.log())
        elif op < 0.95:
            db.truncate_only(new_instance=f"i{next(instances)}" if rng.random() < 0.5 else None)
        elif logs:
            cat.remove_image(logs.pop(rng.randrange(len(logs))).backup_id)
    fulls = cat.list_images(database="mydb", dump_type="D", newest_first=False)
    assert len(fulls) > 20
    spans = restorable_spans(cat, "mydb")
    assert [s.full_backup_id for s in spans] == ids(fulls)
    for full, span in zip(fulls, spans, strict=True):
        chain = log_chain(cat, full.backup_id)
        assert (span.start, span.end) == (full.backup_time, chain.end_time), full.backup_id
        applied = full.lsn
        for log in chain.logs:
            assert log.first_lsn <= applied + 1 and log.instance_id == full.instance_id
            applied = max(applied, log.last_lsn)
        assert applied == chain.end_lsn
        if chain.gaps:
            assert chain.gaps[0].missing_first_lsn == applied + 1
        # the last restorable time is restorable, and a moment later is not
        assert restore_chain(cat, full.backup_id, chain.end_time)[0] == full
        with pytest.raises(StatusError):
            restore_chain(cat, full.backup_id, chain.end_time + 0.001)
