"""The benchmark cases. Each returns table rows (bench.stats.Row); timings are wall-clock seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.env import SybarHome, log
from bench.stats import Row, alternate, median, percentile

RESTIC_PASSWORD = "bench-restic-password"
BORG_PASSPHRASE = "bench-borg-passphrase"
BORG_ENCRYPTION = "repokey"  # borg's AES-CTR + HMAC-SHA256, key in the repo: "encryption on if available"


class Ctx:
    """What every case shares."""

    def __init__(self, home: SybarHome, work: Path, db_file: Path, runs: int, peers: dict[str, bool],
                 quick: bool):
        self.home = home
        self.work = work
        self.db_file = db_file  # the test database as sybar serves it (HOME/data/mydb.db)
        self.runs = runs
        self.peers = peers
        self.quick = quick
        self.backup_script = home.write_backup_script("bench_backup_2", "mydb", 2, 1)
        self.image: str | None = None  # a 2-stripe image of mydb, for the restore case
        self.restore_seq = 0


def _sync() -> None:
    os.sync()


def _run(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _restic_env() -> dict:
    return dict(os.environ, RESTIC_PASSWORD=RESTIC_PASSWORD)


def _borg_env(work: Path) -> dict:
    base = work / "borg-base"
    return dict(os.environ, BORG_PASSPHRASE=BORG_PASSPHRASE, BORG_BASE_DIR=str(base),
                BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")


def _rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _measure(names_to_fns: dict[str, tuple[Callable[[], None] | None, Callable[[], None], Callable[[], None] | None]],
             runs: int) -> dict[str, list[float] | str]:
    """Run each (setup, timed, teardown) A B C A B C ...; an error stops that subject only."""
    out: dict[str, list[float] | str] = {name: [] for name in names_to_fns}
    for i, name in alternate(list(names_to_fns), runs):
        if isinstance(out[name], str):
            continue
        setup, timed, teardown = names_to_fns[name]
        try:
            if setup:
                setup()
            t = _timed(timed)
            out[name].append(t)  # type: ignore[union-attr]
            log(f"  run {i + 1}/{runs} {name}: {t:.2f} s")
        except Exception as e:  # noqa: BLE001 - a peer's failure goes into the table
            log(f"  run {i + 1}/{runs} {name}: FAILED {e}")
            out[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
        finally:
            if teardown:
                with contextlib.suppress(Exception):
                    teardown()
    return out


def _rows(case: str, measured: dict, spec: dict[str, dict]) -> list[Row]:
    rows = []
    for name, values in measured.items():
        kw = spec.get(name, {})
        row = Row(case=case, subject=name, **kw)
        if isinstance(values, str):
            row.error = values
        else:
            row.values = values
        rows.append(row)
    return rows


# -- 1. backup ---------------------------------------------------------------------------


def case_backup(ctx: Ctx) -> list[Row]:
    log("case backup: sybar backup (2 stripes, compression = 1) vs restic, borg, zstd")
    work = ctx.work / "backup"
    work.mkdir(exist_ok=True)
    src = ctx.db_file
    fns: dict = {}

    def sybar_backup() -> None:
        ctx.home.sybar("backup", str(ctx.backup_script))

    fns["sybar"] = (None, sybar_backup, None)
    if ctx.peers.get("restic"):
        rrepo = work / "restic-repo"
        fns["restic backup"] = (
            lambda: (_rm(rrepo), _run(["restic", "-q", "-r", str(rrepo), "init"], _restic_env())),
            lambda: (_run(["restic", "-q", "-r", str(rrepo), "--no-cache", "backup", str(src)], _restic_env()),
                     _sync()),
            lambda: _rm(rrepo),
        )
    if ctx.peers.get("borg"):
        brepo = work / "borg-repo"
        benv = _borg_env(work)
        fns["borg create"] = (
            lambda: (_rm(brepo), _rm(work / "borg-base"),
                     _run(["borg", "init", f"--encryption={BORG_ENCRYPTION}", str(brepo)], benv)),
            lambda: (_run(["borg", "create", "--compression", "zstd,1", f"{brepo}::bench", str(src)], benv),
                     _sync()),
            lambda: (_rm(brepo), _rm(work / "borg-base")),
        )
    if ctx.peers.get("zstd"):
        out = work / "mydb.db.zst"
        fns["zstd -1 -T2"] = (
            lambda: _rm(out),
            lambda: (_run(["zstd", "-q", "-f", "-1", "-T2", str(src), "-o", str(out)]), _sync()),
            lambda: _rm(out),
        )
    measured = _measure(fns, ctx.runs)
    ctx.image = ctx.home.latest_backup_id("mydb")
    spec = {
        "sybar": {"note": "2 stripes, zstd 1, AES-256-GCM (a new home's default)"},
        "restic backup": {"baseline": "sybar", "ratio_label": "", "target": 2.5, "target_text": "≥ 2.5×",
                          "note": "AES-256, fresh repo, --no-cache, + sync"},
        "borg create": {"baseline": "sybar", "target": 2.0, "target_text": "≥ 2.0×",
                        "note": f"zstd,1, encryption {BORG_ENCRYPTION}, fresh repo, + sync"},
        "zstd -1 -T2": {"baseline": "sybar", "target": 1.0, "target_text": "≥ 1.0×", "note": "file + sync"},
    }
    return _rows("backup", measured, spec)


# -- 2. restore --------------------------------------------------------------------------


def case_restore(ctx: Ctx) -> list[Row]:
    log("case restore: sybar restore --image ID --database NEW vs restic restore, borg extract, zstd -d")
    work = ctx.work / "restore"
    work.mkdir(exist_ok=True)
    src = ctx.db_file
    if ctx.image is None:
        ctx.home.sybar("backup", str(ctx.backup_script))
        ctx.image = ctx.home.latest_backup_id("mydb")
    image = ctx.image
    fns: dict = {}
    current: dict[str, str] = {}

    def sybar_setup() -> None:
        ctx.restore_seq += 1
        current["db"] = f"mydb_r{ctx.restore_seq}"

    fns["sybar"] = (
        sybar_setup,
        lambda: ctx.home.sybar("restore", "--image", image, "--database", current["db"]),
        lambda: ctx.home.drop_database(current["db"]),
    )
    if ctx.peers.get("restic"):
        rrepo = work / "restic-repo"
        _rm(rrepo)
        _run(["restic", "-q", "-r", str(rrepo), "init"], _restic_env())
        _run(["restic", "-q", "-r", str(rrepo), "--no-cache", "backup", str(src)], _restic_env())
        rtarget = work / "restic-target"
        fns["restic restore"] = (
            lambda: _rm(rtarget),
            lambda: (_run(["restic", "-q", "-r", str(rrepo), "--no-cache", "restore", "latest", "--target",
                           str(rtarget)], _restic_env()), _sync()),
            lambda: _rm(rtarget),
        )
    if ctx.peers.get("borg"):
        brepo = work / "borg-repo"
        benv = _borg_env(work)
        _rm(brepo)
        _run(["borg", "init", f"--encryption={BORG_ENCRYPTION}", str(brepo)], benv)
        _run(["borg", "create", "--compression", "zstd,1", f"{brepo}::bench", str(src)], benv)
        btarget = work / "borg-target"
        fns["borg extract"] = (
            lambda: (_rm(btarget), btarget.mkdir()),
            lambda: (_run(["borg", "extract", f"{brepo}::bench"], benv, cwd=btarget), _sync()),
            lambda: _rm(btarget),
        )
    if ctx.peers.get("zstd"):
        packed = work / "mydb.db.zst"
        _run(["zstd", "-q", "-f", "-1", "-T2", str(src), "-o", str(packed)])
        out = work / "mydb.db"
        fns["zstd -d"] = (
            lambda: _rm(out),
            lambda: (_run(["zstd", "-q", "-f", "-d", str(packed), "-o", str(out)]), _sync()),
            lambda: _rm(out),
        )
    measured = _measure(fns, ctx.runs)
    shutil.rmtree(work, ignore_errors=True)
    spec = {
        "sybar": {"note": "2-stripe image into a new database, to online"},
        "restic restore": {"baseline": "sybar", "target": 1.3, "target_text": "≥ 1.3×", "note": "+ sync"},
        "borg extract": {"baseline": "sybar", "target_kind": "info", "note": "+ sync, for reference"},
        "zstd -d": {"baseline": "sybar", "target": 1.0, "target_text": "≥ 1.0×", "note": "+ sync"},
    }
    return _rows("restore", measured, spec)


# -- 3. stripes --------------------------------------------------------------------------


def case_stripes(ctx: Ctx) -> list[Row]:
    log("case stripes: sybar backup with 1, 2, 4, 8 stripes")
    counts = [1, 2, 4, 8]
    fns: dict = {}
    for n in counts:
        script = ctx.home.write_backup_script(f"bench_backup_s{n}", "mydb", n, 1)
        fns[f"sybar {n} stripe{'s' if n > 1 else ''}"] = (
            None, (lambda s=script: ctx.home.sybar("backup", str(s))), None)
    measured = _measure(fns, ctx.runs)
    cores = os.cpu_count() or 1
    names = list(fns)
    spec: dict[str, dict] = {names[0]: {}}
    spec[names[1]] = {"baseline": names[0], "ratio_label": "speedup", "target": 1.7, "target_text": "≥ 1.7×",
                      "note": "CPU-bound" if cores >= 2 else "1 core: not CPU-bound-scalable"}
    if cores < 2:
        spec[names[1]]["target_kind"] = "info"
    rows = _rows("stripes", measured, spec)
    # beyond the core count: no loss against the speedup at the core count (5 % slack for noise)
    by_n = dict(zip(counts, rows, strict=True))
    at_cores = max((n for n in counts if n <= cores), default=1)
    base = by_n[1]
    for n, row in by_n.items():
        if n == 1 or n == 2:
            continue
        row.baseline, row.ratio_label = base.subject, "speedup"
        if n > cores and by_n[at_cores].values and base.values:
            ref = base.median / by_n[at_cores].median
            row.target, row.target_kind = round(ref * 0.95, 2), "ratio>="
            row.target_text = f"≥ {row.target}× (no loss past {cores} cores)"
        else:
            row.target_kind = "info"
    return rows


# -- 3b. encryption -----------------------------------------------------------------------


def case_encryption(ctx: Ctx) -> list[Row]:
    """The cost of AES-256-GCM at rest: the same 2-stripe backup and its restore, plain and encrypted."""
    log("case encryption: sybar backup and restore, -ENCRYPT none vs -ENCRYPT aes-256-gcm (2 stripes, zstd 1)")
    scripts = {
        "sybar plain": ctx.home.write_backup_script("bench_backup_plain", "mydb", 2, 1, "none"),
        "sybar encrypted": ctx.home.write_backup_script("bench_backup_enc", "mydb", 2, 1, "aes-256-gcm"),
    }
    images: dict[str, str] = {}

    def backup(name: str) -> Callable[[], None]:
        def run() -> None:
            ctx.home.sybar("backup", str(scripts[name]))
        return run

    def remember(name: str) -> Callable[[], None]:
        def after() -> None:
            images[name] = ctx.home.latest_backup_id("mydb")
        return after

    fns = {f"{n} backup": (None, backup(n), remember(n)) for n in scripts}
    measured = _measure(fns, ctx.runs)
    current: dict[str, str] = {}

    def restore_setup() -> None:
        ctx.restore_seq += 1
        current["db"] = f"mydb_r{ctx.restore_seq}"

    def restore(name: str) -> Callable[[], None]:
        return lambda: ctx.home.sybar("restore", "--image", images[name], "--database", current["db"])

    rfns = {f"{n} restore": (restore_setup, restore(n), lambda: ctx.home.drop_database(current["db"]))
            for n in scripts if n in images}
    measured.update(_measure(rfns, ctx.runs))
    spec = {
        "sybar encrypted backup": {"baseline": "sybar plain backup", "ratio_label": "throughput", "target": 0.9,
                                   "target_text": "≥ 0.90× (cost < 10 %)", "note": "AES-256-GCM per block"},
        "sybar encrypted restore": {"baseline": "sybar plain restore", "ratio_label": "throughput",
                                    "target": 0.9, "target_text": "≥ 0.90× (cost < 10 %)",
                                    "note": "AES-256-GCM per block"},
    }
    return _rows("encryption", measured, spec)


# -- 4. rss ------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(roots: list[int], kids: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, []))
    return seen


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
        return " ".join(p.decode(errors="replace") for p in parts[:3]).strip()
    except OSError:
        return "?"


def case_rss(ctx: Ctx) -> list[Row]:
    log("case rss: peak RSS of every sybar process during a 4-stripe backup (sampled every 50 ms)")
    script = ctx.home.write_backup_script("bench_backup_rss", "mydb", 4, 1)
    peaks: list[float] = []
    biggest: dict[str, int] = {}
    for i in range(ctx.runs):
        stop = threading.Event()
        cli: dict[str, subprocess.Popen] = {}
        peak = [0]

        def sample(cli=cli, peak=peak, stop=stop) -> None:
            while not stop.is_set():
                roots = [ctx.home.proc.pid] + ([cli["p"].pid] if "p" in cli else [])
                pids = _tree(roots, _children_map())
                per = {p: _rss_kb(p) for p in pids}
                total = sum(per.values())
                if total > peak[0]:
                    peak[0] = total
                for p, kb in per.items():
                    name = _comm(p)
                    if kb > biggest.get(name, 0):
                        biggest[name] = kb
                stop.wait(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            p = subprocess.Popen(["sybar", "backup", str(script), "--home", str(ctx.home.root)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ctx.home.env, text=True)
            cli["p"] = p
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"sybar backup exited {p.returncode}: {out[-2000:]}")
        finally:
            stop.set()
            t.join()
        peaks.append(peak[0] / 1024)
        log(f"  run {i + 1}/{ctx.runs} peak RSS {peak[0] / 1024:.0f} MB")
    top = sorted(biggest.items(), key=lambda kv: -kv[1])[:4]
    note = "sum over daemon, media server, CLI, script, isql; largest: " + ", ".join(
        f"{name.split('/')[-1][:40]} {kb / 1024:.0f}" for name, kb in top)
    return [Row(case="rss", subject="sybar, 4-stripe backup", values=peaks, unit="MB", target=300,
                target_kind="value<", target_text="< 300 MB", note=note)]


# -- 5. catalog --------------------------------------------------------------------------

CATALOG_DATABASES = [f"db{i:02d}" for i in range(50)]
CATALOG_SPAN = 2 * 365 * 86400  # two years of images
CATALOG_END = 1_780_000_000.0


def build_catalog(catalog_path: Path, count: int, batch: int = 100_000) -> float:
    """Import `count` complete one-stripe images through Catalog.import_images; returns seconds."""
    from engine.catalog.catalog import Catalog, Image, ObjectRecord
    from engine.catalog.seal import catalog_key

    rng = random.Random(7)
    t0 = time.perf_counter()
    start = CATALOG_END - CATALOG_SPAN
    step = CATALOG_SPAN / count
    key, new = catalog_key(catalog_path.parent)  # the home's seal key: the imported images are sealed
    with Catalog(catalog_path, seal_key=key, key_is_new=new) as cat:
        done = 0
        while done < count:
            n = min(batch, count - done)
            images = []
            for k in range(done, done + n):
                db = CATALOG_DATABASES[k % len(CATALOG_DATABASES)]
                when = start + k * step
                bid = f"benchhost_{int(when)}_{k}"
                kind = "D" if k % 5 == 0 else "T"
                name = f"SYBAR.{db}.{kind}.0.{k}.bench"
                size = rng.randrange(1 << 20, 1 << 30)
                images.append(Image(
                    backup_id=bid, client="benchhost", dataserver="SYBAR", database=db, dump_type=kind,
                    policy="Sybase_ASE", schedule="Default-Application-Backup", schedule_type=0, keyword=None,
                    backup_time=when, expiration=when + 14 * 86400, compression=1, job_id=None, dump_id=None,
                    stripes=1, kbytes=size // 1024, state="complete", storage_unit="disk1", reason=None,
                    created=when, committed=when, verified_at=None, verify_status=None,
                    objects=[ObjectRecord(bid, 0, name, "disk1", size // 2, size, "0" * 16, when)],
                ))
            cat.import_images(images)
            done += n
            log(f"  catalog: {done:,} images imported")
    return time.perf_counter() - t0


async def _listing_latencies(home: SybarHome, queries: int) -> dict[str, list[float]]:
    from engine.control.client import ControlClient

    state = json.loads((home.root / "control.json").read_text())
    token = (home.root / "control.token").read_text().strip()
    rng = random.Random(11)
    kinds: dict[str, Callable[[], dict]] = {
        "by database": lambda: {"database": rng.choice(CATALOG_DATABASES), "limit": 100},
        "by date range": lambda: (lambda t: {"since": t, "until": t + 7 * 86400, "limit": 100})(
            rng.uniform(CATALOG_END - CATALOG_SPAN, CATALOG_END - 7 * 86400)),
        "database + date range": lambda: (lambda t: {"database": rng.choice(CATALOG_DATABASES), "since": t,
                                                     "until": t + 30 * 86400, "limit": 100})(
            rng.uniform(CATALOG_END - CATALOG_SPAN, CATALOG_END - 30 * 86400)),
        "latest per database": lambda: {"database": rng.choice(CATALOG_DATABASES), "limit": 1},
    }
    out: dict[str, list[float]] = {k: [] for k in kinds}
    async with ControlClient(state["url"], token) as client:
        for _ in range(10):  # warm the connection and SQLite's page cache
            await client.images(limit=1)
        for _ in range(queries):
            for kind, make in kinds.items():  # interleaved, so no kind gets a warmer cache
                params = make()
                t0 = time.perf_counter()
                result = await client.images(**params)
                out[kind].append((time.perf_counter() - t0) * 1000)
                if not result:
                    raise RuntimeError(f"catalog listing {kind} {params} returned nothing")
    return out


def case_catalog(ctx: Ctx, count: int) -> list[Row]:
    log(f"case catalog: {count:,} images, filtered listings through the control API")
    ctx.home.stop()
    try:
        secs = build_catalog(ctx.home.root / "catalog.db", count)
    finally:
        ctx.home.start()
    queries = 100 if ctx.quick else 300
    lat = asyncio.run(_listing_latencies(ctx.home, queries))
    rows = [Row(case="catalog", subject=f"import {count:,} images", values=[secs], target_kind="info",
                note="Catalog.import_images, batches of 100,000")]
    for kind, values in lat.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        rows.append(Row(case="catalog", subject=f"{kind} p50", values=[p50], unit="ms", target=20,
                        target_kind="value<", target_text="< 20 ms", note=f"n={len(values)}"))
        rows.append(Row(case="catalog", subject=f"{kind} p99", values=[p99], unit="ms", target=50,
                        target_kind="value<", target_text="< 50 ms", note=f"n={len(values)}"))
    return rows


# -- 6. GUI ------------------------------------------------------------------------------
# The window runs in a child process (bench/gui_probe.py, offscreen): this process never imports Qt.

GUI_STALL_TARGET_MS = 30.0
GUI_LAUNCH_TARGET_S = 1.0


def _probe(ctx: Ctx, args: list[str], timeout: float) -> dict:
    """python -m bench.gui_probe ARGS on the bench's home; its `GUI-PROBE {json}` line."""
    from bench.env import REPO
    from bench.gui_probe import MARK

    env = dict(ctx.home.env, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "bench.gui_probe", *args, "--home", str(ctx.home.root)],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    lines = [line for line in r.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"gui_probe {args[0]} exited {r.returncode} without a result: {r.stderr[-1500:]}")
    data = json.loads(lines[-1][len(MARK):])
    if data.get("error"):
        raise RuntimeError(f"gui_probe {args[0]}: {data['error']}")
    return data


def case_gui_stall(ctx: Ctx) -> list[Row]:
    log("case gui_stall: the window's event-loop turn gaps while Task Progress follows a 4-stripe backup")
    script = ctx.home.write_backup_script("bench_backup_gui", "mydb", 4, 1)
    p50s: list[float] = []
    p99s: list[float] = []
    maxes: list[float] = []
    cpu99s: list[float] = []
    samples = 0
    durations: list[float] = []
    for i in range(ctx.runs):
        d = _probe(ctx, ["stall", "--script", str(script)], timeout=3600)
        if d["status"] != 0 or d["stripes"] != 4:
            raise RuntimeError(f"the backup job {d['job']} ended with status {d['status']} and {d['stripes']} "
                               f"stripes: {d.get('message')}")
        wall, cpu = d["wall_ms"], d["cpu_ms"]
        if len(wall) < 20:
            raise RuntimeError(f"only {len(wall)} turns of the loop recorded during the backup")
        p50s.append(percentile(wall, 50))
        p99s.append(percentile(wall, 99))
        maxes.append(max(wall))
        cpu99s.append(percentile(cpu, 99))
        samples += len(wall)
        durations.append(d["duration_s"])
        log(f"  run {i + 1}/{ctx.runs}: {len(wall)} turns over a {d['duration_s']:.1f} s backup "
            f"({d['events_seen']} events): gap p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, "
            f"max {maxes[-1]:.1f} ms; main-thread CPU per gap p99 {cpu99s[-1]:.1f} ms")
    note = (f"offscreen, 5 ms sleeper, {samples} turns over {len(durations)} backup(s) of "
            f"{median(durations):.1f} s; values per run")
    return [
        Row(case="gui_stall", subject="loop turn gap p50", values=p50s, unit="ms", target_kind="info", note=note),
        Row(case="gui_stall", subject="loop turn gap p99", values=p99s, unit="ms", target=GUI_STALL_TARGET_MS,
            target_kind="value<", target_text=f"< {GUI_STALL_TARGET_MS:.0f} ms"),
        Row(case="gui_stall", subject="loop turn gap max", values=maxes, unit="ms", target_kind="info"),
        Row(case="gui_stall", subject="main-thread CPU per gap p99 (time.thread_time())", values=cpu99s,
            unit="ms", target_kind="info"),
    ]


def case_gui_launch(ctx: Ctx) -> list[Row]:
    runs = max(ctx.runs, 2 if ctx.quick else 5)
    log(f"case gui_launch: process start to the window shown with its data (1 warm-up + {runs} runs)")
    shown: list[float] = []
    first_paint: list[float] = []
    steps: dict[str, list[float]] = {"process": [], "imported": [], "built": [], "data": []}
    for i in range(runs + 1):
        t0 = time.monotonic()
        d = _probe(ctx, ["launch", "--t0", repr(t0)], timeout=300)
        s = d["since_t0_s"]
        if i == 0:
            log(f"  warm-up: shown after {s['shown']:.2f} s")
            continue
        shown.append(s["shown"])
        first_paint.append(s["first_paint"])
        for k, v in steps.items():
            v.append(s[k])
        log(f"  run {i}/{runs}: imported {s['imported']:.2f} s, built {s['built']:.2f} s, first paint "
            f"{s['first_paint']:.2f} s, data {s['data']:.2f} s, shown {s['shown']:.2f} s")
    parts = {"process": "interpreter up", "imported": "Qt + gui imported", "built": "window built",
             "data": "data in"}
    note = "medians since spawn: " + ", ".join(f"{parts[k]} {median(v):.2f} s" for k, v in steps.items())
    return [
        Row(case="gui_launch", subject="process start → window shown with its data (warm; first paint after "
            "the daemon connected, the job list and the first page of images loaded)", values=shown,
            target=GUI_LAUNCH_TARGET_S, target_kind="value<", target_text=f"< {GUI_LAUNCH_TARGET_S:.1f} s",
            note=note),
        Row(case="gui_launch", subject="process start → first paint (window frame, before its data)",
            values=first_paint, target_kind="info"),
    ]
