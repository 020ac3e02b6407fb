"""10,000 images of one database in one lineage: chains stay fast (indexed
range scans, a page at a time; spans in one pass).

Timings are printed; the assertions are generous (the target for restore_chain
is under 50 ms)."""

from __future__ import annotations

import time

from engine.catalog.catalog import Catalog, Image, ObjectRecord
from engine.catalog.chains import log_chain, restorable_spans, restore_chain

N = 10_000
EVERY = 50  # one full dump every 50 images: 200 full dumps, 9,800 log dumps
T0 = 1_700_000_000.0


def _image(i: int, dump_type: str, t: float, stripes: int, **facts) -> Image:
    bid = f"dbhost_{int(t):010d}"
    objects = [
        ObjectRecord(bid, s, f"SYBAR.big.{dump_type}.{s}.{i}.x", "disk1", 1024, 4096, "00", t)
        for s in range(stripes)
    ]
    return Image(
        backup_id=bid, client="dbhost", dataserver="SYBAR", database="big", dump_type=dump_type,
        policy="Sybase_ASE", schedule="Default-Application-Backup", schedule_type=2, keyword=None, backup_time=t,
        expiration=t + 14 * 86400, compression=1, job_id=i, dump_id=None, stripes=stripes, kbytes=stripes,
        state="complete", storage_unit="disk1", reason=None, created=t, committed=t, verified_at=None,
        verify_status=None, instance_id="big-1", objects=objects, **facts,
    )  # fmt: skip


def build(cat: Catalog) -> tuple[list[Image], list[Image]]:
    """Five transactions a minute, a log dump every 15 minutes, a full dump after
    every 49 log dumps (the log is never truncated by a full dump)."""
    fulls, logs, images = [], [], []
    lsn = 0
    dumped = 0
    follows = None
    t = T0
    for i in range(N):
        t += 900.0
        if i % EVERY == 0:
            im = _image(i, "D", t, 2, lsn=lsn)
            fulls.append(im)
            if follows is None:
                follows = im.backup_id
        else:
            first, last = dumped + 1, lsn + 75  # 75 commits, 12 s apart, ending 6 s before the dump
            im = _image(i, "T", t, 1, first_lsn=first, last_lsn=last, first_commit=t - 900 + 12,
                        last_commit=t - 6, follows=follows)  # fmt: skip
            lsn = dumped = last
            follows = im.backup_id
            logs.append(im)
        images.append(im)
    cat.import_images(images)
    return fulls, logs


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1000


def test_10k_images_chains_in_milliseconds(tmp_path):
    cat = Catalog(tmp_path / "catalog.db")
    fulls, logs = build(cat)
    assert cat.count_images(database="big") == N

    # the usual restore: a recent full dump, a time a few log dumps later
    full = fulls[-3]
    until = full.backup_time + 10 * 900 + 300
    restore_chain(cat, full.backup_id, until)  # warm the page cache
    images, ms = timed(lambda: restore_chain(cat, full.backup_id, until))
    print(f"\nrestore_chain(recent full, until 10 log dumps later): {ms:.2f} ms, {len(images)} images")
    assert len(images) == 12 and images[-1].last_commit >= until > images[-2].last_commit
    assert all(len(i.objects) == i.stripes for i in images)
    assert ms < 500

    full = fulls[len(fulls) // 2]
    until = full.backup_time + 48 * 900
    images, ms = timed(lambda: restore_chain(cat, full.backup_id, until))
    print(f"restore_chain(middle full, until its next full dump): {ms:.2f} ms, {len(images)} images")
    assert len(images) == 50
    assert ms < 500

    # the worst cases: the oldest full dump, through every log dump since
    last = logs[-1].last_commit
    images, ms = timed(lambda: restore_chain(cat, fulls[0].backup_id, last - 1))
    print(f"restore_chain(oldest full, until the end): {ms:.2f} ms, {len(images)} images")
    assert len(images) == 1 + len(logs)
    assert ms < 5000

    chain, ms = timed(lambda: log_chain(cat, fulls[0].backup_id))
    print(f"log_chain(oldest full): {ms:.2f} ms, {len(chain.logs)} log dumps")
    assert len(chain.logs) == len(logs) and chain.gaps == [] and chain.end_time == last
    assert ms < 5000

    spans, ms = timed(lambda: restorable_spans(cat, "big"))
    print(f"restorable_spans: {ms:.2f} ms, {len(spans)} spans")
    assert len(spans) == len(fulls) and all(s.end == last for s in spans)
    assert ms < 2000

    # recording one more log dump: follows is found through the indexes
    im = cat.begin_image(client="dbhost", dataserver="SYBAR", database="big", dump_type="T", stripes=1,
                         backup_time=logs[-1].backup_time + 900, instance_id="big-1",
                         first_lsn=logs[-1].last_lsn + 1, last_lsn=logs[-1].last_lsn + 10,
                         first_commit=last + 10, last_commit=last + 100)  # fmt: skip
    cat.add_object(im.backup_id, stripe=0, name="SYBAR.big.T.0.new.x", storage_unit="disk1", bytes=1)
    new, ms = timed(lambda: cat.commit_image(im.backup_id))
    print(f"commit_image(log dump) with follows: {ms:.2f} ms")
    assert new.follows == logs[-1].backup_id
    assert ms < 1000
    cat.close()
