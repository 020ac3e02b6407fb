"""The fault driver: real jobs on a real `sybar serve`, a fault at a random point, then the invariants.

A `Rig` is one home with its daemon, two databases (``mydb`` for full dumps
and restores, ``logdb`` for log dumps) and its storage unit on a small
filesystem made for the test (tmpfs, as root). ``Rig.fault(kind)`` starts a
job, waits for a random byte count from the job's progress events (or a
random time), injects the fault, recovers as a DBA would (restart the
daemon, free the space, remount read-write) and checks:

a. every image `sybar list` shows has all its stripes on the storage unit at
   their full sizes and verifies;
b. every image that existed before the fault is still there and verifies; a
   sample restores bit-exact (per-table digests as they were when it was
   taken);
c. the next backup succeeds;
d. `sybar cleanup` leaves no orphan: no stored object outside the catalog, no
   temporary, no pending or failed image, no stray file beside the
   databases, no process of the killed daemon's family still running;
e. the failed job ended with the NetBackup status expected for the kind.

Run the long campaign with ``tools/faults --long [--count N] [--seed S]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sybar_testkit import REPO, keep_sa_password_in_keyring, start_serve, stop_serve, sybar, table_digest  # noqa: E402

#: fault kinds: (role killed or condition, operation)
ROLES = ("media", "dataserver", "bphdb", "script", "isql", "gui", "daemon")
#: The quick suite kills the `sybar serve` process once in a backup for all of its roles (dataserver,
#: master, bphdb: one process in the embedded default); the long run names each role.
QUICK_KINDS = (
    *[(role, "backup") for role in ROLES if role not in ("dataserver", "bphdb")],
    ("media", "restore"),
    ("daemon", "logdump"),
    ("disk_full", "backup"),
    ("read_only", "backup"),
)
LONG_KINDS = (
    *[(role, "backup") for role in ROLES],
    *QUICK_KINDS[len(ROLES) - 2:],
    ("dataserver", "restore"), ("script", "restore"), ("isql", "restore"),
    ("media", "logdump"), ("script", "logdump"), ("isql", "logdump"),
    ("disk_full", "logdump"), ("read_only", "logdump"),
)
#: In the embedded default the dataserver, master and bphdb live in the `sybar serve` process.
DAEMON_ROLES = {"dataserver", "bphdb", "daemon"}
TABLES = {"mydb": ("customer", "orders"), "logdb": ("customer", "orders")}

#: The NetBackup status each kind's failed job ends with.
EXPECTED_STATUS = {
    # 84 (58 when it died while a stripe was connecting to it); a restore: 0 when it had sent everything
    "media": {"backup": {84, 58}, "logdump": {84, 58}, "restore": {0, 2850}},
    "daemon": 50,            # the next daemon ends the jobs the killed one left: client process aborted
    "script": 50,            # bphdb: the script was killed (client process aborted)
    # 50: its dump or load was cut off; 6 (2850 for a restore): it ended before its dump began, or the
    # dump ended first and only the script saw isql fail
    "isql": {"backup": {6, 50}, "logdump": {6, 50}, "restore": {2850, 50}},
    "gui": 0,                # the GUI is only a window on the daemon: the backup goes on
    "disk_full": 84,         # media write error
    "read_only": 84,
}


def expected_status(role: str, operation: str) -> set[int]:
    want = EXPECTED_STATUS["daemon" if role in DAEMON_ROLES else role]
    if isinstance(want, dict):
        want = want[operation]
    return want if isinstance(want, set) else {want}


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise AssertionError(
            f"the {what} fault needs root (it mounts a small filesystem for the storage unit); "
            "run the fault suite as root, as CI does")


def run_root(*argv: str) -> None:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {r.stderr.strip()}")


def _tds_errors() -> tuple:
    from engine.tds.client import TDSClientError

    return (TDSClientError,)


# -- processes ---------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[3])


def _cmdline(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(pid: int | None) -> bool:
    return bool(pid) and _proc_stat(pid) is not None


def processes_of_home(home: Path) -> dict[int, list[str]]:
    """Every live process started for this home: daemons, media servers, scripts, isql, GUI."""
    out = {}
    h = str(home)
    for pid in _pids():
        if pid == os.getpid():
            continue
        cmd = _cmdline(pid)
        if _proc_stat(pid) is not None and any(h in a for a in cmd):
            out[pid] = cmd
    return out


def wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


# -- the rig --------------------------------------------------------------------------------

BACKUP_SH = """#!/bin/sh
# {name}: a Sybase script in the shape of the NetBackup templates; isql is its child.
ISQL=${{ISQL:-{isql}}}
OUT=$(dirname "$0")/{name}.$$.out
"$ISQL" -Usa -SSYBAR -w 200 -i "$(dirname "$0")/{name}.sql" -o "$OUT"
RC=$?
cat "$OUT"
if [ $RC -ne 0 ] || grep -q "^Msg" "$OUT" || ! grep -q "{done}" "$OUT"; then
    rm -f "$OUT"
    exit 1
fi
rm -f "$OUT"
exit 0
"""

DEV = '"sybackup::-SERV localhost -POLICY Sybase_ASE"'


@dataclass
class Outcome:
    kind: tuple[str, str]
    hit: bool = False                 # the fault landed while the job ran
    status: int | None = None
    at_bytes: int = 0
    of_bytes: int = 0
    images_lost: int = 0
    half_visible: int = 0
    restores_checked: int = 0
    next_backup_failed: int = 0
    injected: bool = False            # a process was killed
    data_hit: bool | None = None      # a data-path fault struck while a stripe was being written
    kept: int = 0                     # whole images the faulted job stored before the fault
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


class Rig:
    def __init__(self, root: Path, rng: random.Random, *, mydb_mb: int = 6, logdb_mb: int = 2,
                 unit_mb: int = 160, log=print):
        from engine.dataserver.demo_data import fill_demo_database

        self.root = root
        self.rng = rng
        self.log = log
        self.home = root / "home"
        self.home.mkdir(mode=0o700, parents=True)
        self.unit = self.home / "storage" / "disk1"
        self.unit.mkdir(mode=0o700, parents=True)
        self.mounted = False
        self.ro_bind = False
        self.ballast: Path | None = None
        if os.geteuid() == 0:
            run_root("mount", "-t", "tmpfs", "-o", f"size={unit_mb}m,mode=0700", "tmpfs", str(self.unit))
            self.mounted = True
        self.scripts = root / "scripts"
        self.scripts.mkdir(mode=0o700)
        self.expect: dict[str, tuple] = {}   # backup id -> (database, type, digests when taken)
        self.log_state: dict | None = None                 # logdb digests as of its last stored log dump
        self.restores = 0
        self.serial = 0
        self.faults = 0
        self.s = None
        self._conn = self._conn_for = None
        try:
            keep_sa_password_in_keyring()
            self.s = start_serve(self.home)
            for name, mb in (("mydb", mydb_mb), ("logdb", logdb_mb)):
                self._sql(f"create database {name}\ngo\n")
                fill_demo_database(self.s.db_file(name), mb)
            self._write_script("backup_mydb", f"dump database mydb to {DEV}\n" + f"    stripe on {DEV}\n" * 3
                               + "    with compression = 101\n", "DUMP is complete")
            self._write_script("backup_logdb", f"dump database logdb to {DEV} stripe on {DEV}\n",
                               "DUMP is complete")
            self._write_script("tran_logdb", f"dump transaction logdb to {DEV} stripe on {DEV}\n",
                               "DUMP is complete")
            self.must_backup("mydb")
            self.must_backup("logdb")
        except BaseException:
            self.close()
            raise

    # -- plumbing
    def _sql(self, sql: str) -> None:
        """Batches separated by `go` lines, on one TDS connection kept open (reopened after a restart)."""
        from engine.tds.client import Connection
        from engine.tds.tokens import Message

        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn_for is not self.s:
                    self._conn = Connection.connect(self.s.host, self.s.port, user="sa", password=self.s.password,
                                                    timeout=60)
                    self._conn_for = self.s
                for batch in sql.split("\ngo\n"):
                    if batch.strip():
                        for ev in self._conn.execute(batch):
                            if isinstance(ev, Message) and ev.severity > 10:
                                raise AssertionError(f"{batch}: Msg {ev.number}: {ev.text}")
                return
            except (OSError, EOFError, ConnectionError) + _tds_errors():
                self._conn = None
                if attempt == 2:
                    raise

    def _write_script(self, name: str, sql: str, done: str, isql: str = "sybar-isql") -> Path:
        script = self.scripts / name
        script.write_text(BACKUP_SH.format(name=name, isql=isql, done=done))
        script.chmod(0o700)
        (self.scripts / f"{name}.sql").write_text("use master\ngo\n" + sql + "go\n")
        return script

    def control(self):
        from engine.control.client import ControlClient

        state = json.loads((self.home / "control.json").read_text())
        return ControlClient(state["url"], (self.home / "control.token").read_text().strip())

    def call(self, fn):
        async def go():
            client = self.control()
            try:
                return await fn(client)
            finally:
                await client.close()
        return asyncio.run(go())

    def images(self) -> list[dict]:
        return self.call(lambda c: c.images(limit=100000))

    def digests(self, db: str, path: Path | None = None) -> dict:
        path = path or self.s.db_file(db)
        return {t: table_digest(path, t) for t in TABLES[db]}

    def change(self, db: str, rows: int) -> None:
        """Some committed changes (log records for a log dump, a new state for the next image)."""
        self.serial += 1
        lo = self.rng.randint(1, 100)
        self._sql(f"use {db}\ngo\nupdate orders set status = 's{self.serial}' where id between {lo} and "
                  f"{lo + rows}\ngo\nuse master\ngo\n")

    def run_job(self, start, timeout: float = 120) -> dict:
        async def go(client):
            jobs = await start(client)
            job = jobs if isinstance(jobs, int) else jobs[0]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                j = await client.job(job)
                if j.get("state") == "done":
                    return j
                await asyncio.sleep(0.1)
            raise AssertionError(f"job {job} did not end in {timeout} s")
        return self.call(go)

    def run_jobs(self, starts, timeout: float = 120) -> list[dict]:
        """Start several jobs at once and wait for all of them."""
        async def go(client):
            ids = [await start(client) for start in starts]
            deadline = time.monotonic() + timeout
            ended: dict[int, dict] = {}
            while len(ended) < len(ids):
                if time.monotonic() > deadline:
                    raise AssertionError(f"jobs {sorted(set(ids) - set(ended))} did not end in {timeout} s")
                for job_id in ids:
                    if job_id not in ended:
                        j = await client.job(job_id)
                        if j.get("state") == "done":
                            ended[job_id] = j
                await asyncio.sleep(0.1)
            return [ended[j] for j in ids]
        return self.call(go)

    def must_backup(self, db: str, script: str | None = None) -> dict:
        script = script or f"backup_{db}"
        before = {i["backup_id"] for i in self.images()}
        job = self.run_job(lambda c: c.backup([str(self.scripts / script)]))
        assert job["status"] == 0, f"backup {script}: {job}"
        new = [i for i in self.images() if i["backup_id"] not in before]
        assert len(new) == 1, new
        self.expect[new[0]["backup_id"]] = (db, new[0]["type"], self.digests(db))
        if db == "logdb":
            self.log_state = self.digests("logdb")
        return new[0]

    # -- the daemon's family
    @property
    def daemon_pid(self) -> int:
        return self.s.proc.pid

    def media_pid(self) -> int | None:
        for pid in _pids():
            st = _proc_stat(pid)
            if st and st[0] == self.daemon_pid and "engine.media" in " ".join(_cmdline(pid)):
                return pid
        return None

    def script_pid(self, name: str) -> int | None:
        path = str(self.scripts / name)
        for pid in _pids():
            cmd = _cmdline(pid)
            if path in cmd[:2] and _proc_stat(pid) is not None:
                return pid
        return None

    def isql_pid(self, script_pid: int | None) -> int | None:
        if not script_pid:
            return None
        for pid in _pids():
            st = _proc_stat(pid)
            if st and st[1] == script_pid and pid != script_pid and any(
                    "isql" in Path(a).name for a in _cmdline(pid)[:2]):
                return pid
        return None

    def restart_daemon(self) -> None:
        self.s.proc.wait(timeout=30)
        with contextlib.suppress(Exception):
            self.s.proc.stdout.close()
            self.s.proc.stderr.close()
        self.s = start_serve(self.home)

    def temporaries(self) -> set[str]:
        try:
            return {p.name for p in (self.unit / ".incoming").iterdir()}
        except OSError:
            return set()

    def _kill_media(self) -> bool:
        pid = self.media_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
        return bool(pid)

    # -- storage faults
    def fill_unit(self, leave: int = 0) -> bool:
        """Fill the storage unit's filesystem to its last page (or to `leave` bytes free)."""
        need_root("disk full")
        self.ballast = self.unit / "ballast.fill"
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            block = b"\0" * (1 << 20)
            if leave:
                st = os.statvfs(self.unit)
                room = st.f_bavail * st.f_frsize - leave
                while room > len(block):
                    room -= os.write(fd, block)
                return True
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block)
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block[:4096])
        finally:
            os.close(fd)
        return True

    def free_unit(self) -> None:
        if self.ballast is not None:
            self.ballast.unlink(missing_ok=True)
            self.ballast = None

    def make_read_only(self) -> bool:
        need_root("read-only storage")
        for _ in range(50):
            run_root("mount", "--bind", str(self.unit), str(self.unit))
            r = subprocess.run(["mount", "-o", "remount,ro,bind", str(self.unit)], capture_output=True, text=True)
            if r.returncode == 0:
                self.ro_bind = True
                return True
            # a stripe opened its temporary through the new bind mount between the two steps (EBUSY):
            # detach it (the writer keeps its file) and try again
            run_root("umount", "-l", str(self.unit))
            time.sleep(0.002)
        raise AssertionError(f"could not make {self.unit} read-only: {r.stderr.strip()}")

    def make_writable(self) -> None:
        if self.ro_bind:
            run_root("umount", str(self.unit))
            self.ro_bind = False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        with contextlib.suppress(Exception):
            self.make_writable()
        with contextlib.suppress(Exception):
            self.free_unit()
        if self.s is not None:
            with contextlib.suppress(Exception):
                stop_serve(self.s)
        for pid in processes_of_home(self.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_gone(list(processes_of_home(self.home)), 10)
        if self.mounted:
            for _ in range(20):
                r = subprocess.run(["umount", str(self.unit)], capture_output=True)
                if r.returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "-l", str(self.unit)], capture_output=True)
            self.mounted = False

    # -- one fault -------------------------------------------------------------------------------
    def fault(self, role: str, operation: str) -> Outcome:
        t0 = time.monotonic()
        out = Outcome((role, operation))
        before = {i["backup_id"]: i for i in self.images()}
        target = image = None
        if operation == "backup":
            script = self._write_script("backup_mydb", f"dump database mydb to {DEV}\n"
                                        + f"    stripe on {DEV}\n" * 3 + "    with compression = 101\n",
                                        "DUMP is complete", isql=self.rng.choice(("sybar-isql", "fisql")))
            self.change("mydb", self.rng.randint(1, 50))
            start = lambda c: c.backup([str(script)])  # noqa: E731
            name = "backup_mydb"
        elif operation == "logdump":
            script = self._write_script("tran_logdb", f"dump transaction logdb to {DEV} stripe on {DEV}\n",
                                        "DUMP is complete", isql=self.rng.choice(("sybar-isql", "fisql")))
            self.change("logdb", self.rng.randint(1500, 2600))
            start = lambda c: c.backup([str(script)])  # noqa: E731
            name = "tran_logdb"
        else:
            full = [b for b, (db, _, _) in self.expect.items() if db == "mydb" and b in before]
            image = self.rng.choice(full)
            self.restores += 1
            target = f"r{self.restores}"
            if role in ("script", "isql"):
                script = self._write_script(
                    "restore_mydb", f"load database {target} from \"sybackup::{before[image]['stripes'][0]['name']}\""
                    + "".join(f" stripe on \"sybackup::{o['name']}\"" for o in before[image]["stripes"][1:])
                    + f"\ngo\nonline database {target}\n", "LOAD is complete", isql=self.rng.choice(("sybar-isql",
                                                                                                    "fisql")))
                self._sql(f"create database {target} for load\ngo\n")
                start = lambda c: c.restore_script(str(script))  # noqa: E731
                name = "restore_mydb"
            else:
                start = lambda c, b=image, t=target: c.restore_image(b, database=t)  # noqa: E731
                name = None
        gui = None
        if role == "gui":
            env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
            gui = subprocess.Popen([shutil.which("sybar") or str(Path(sys.executable).with_name("sybar")), "gui",
                                    "--home", str(self.home)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env)
            time.sleep(1.0)
        if role == "disk_full":
            self.fill_unit(leave=24 << 20)   # the fault then fills only the last megabytes: at once
        killed_daemon = role in DAEMON_ROLES
        family = {self.daemon_pid, self.media_pid()}

        def inject(progress: tuple[int, int]) -> bool:
            out.at_bytes, out.of_bytes = progress
            if role in ("media", "disk_full", "read_only") and operation != "restore":
                # in the data path, the fault hits when a stripe is being written before and after it
                writing = self.temporaries()
                fired = {"disk_full": self.fill_unit, "read_only": self.make_read_only,
                         "media": self._kill_media}[role]()
                # (a media server killed with no temporary open may still have been about to answer a
                # stripe's commit: that stripe fails, see the expected status of a missed media kill)
                # (a media server killed has no one left to remove its temporaries: those left name the
                # stripes it was storing when it died)
                out.data_hit = bool(self.temporaries() if role == "media" else writing & self.temporaries())
                return fired

            if role == "gui":
                pid = gui.pid if gui.poll() is None else None
            elif role == "media":
                pid = self.media_pid()
            elif killed_daemon:
                pid = self.daemon_pid
            else:
                spid = self.script_pid(name) if name else None
                pid = spid if role == "script" else self.isql_pid(spid)
            if not pid:
                return False
            family.add(self.script_pid(name) if name else None)
            os.kill(pid, signal.SIGKILL)
            out.injected = True
            return True

        pre = None
        if operation != "restore":
            db = "mydb" if operation == "backup" else "logdb"
            pre = (db, self.digests(db))
        t = time.monotonic()
        out.data_hit = None
        job_id, ended, out.hit = self._drive(start, inject, daemon_dies=killed_daemon,
                                             data_path=role in ("media", "disk_full", "read_only"),
                                             restore=operation == "restore")
        out.timings["job"] = time.monotonic() - t
        if out.data_hit is not None:
            out.hit = out.hit and out.data_hit
        # -- recovery, as a DBA would do it
        t = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.s.proc.wait(timeout=5 if killed_daemon and out.injected else 0.01)
        if self.s.proc.poll() is not None:
            self.restart_daemon()
        out.timings["restart"] = time.monotonic() - t
        self.free_unit()
        self.make_writable()
        if gui is not None:
            gui.kill()
            gui.wait()
        t = time.monotonic()
        self._wait_idle()
        out.timings["idle"] = time.monotonic() - t
        job = self.call(lambda c: c.job(job_id))
        out.status = job.get("status")
        if role in ("disk_full", "read_only") and operation != "restore" and out.status in (0, 84):
            # who wins the last free pages, or whether a stripe had made its last write before the remount,
            # is a race: a storage fault struck the job when the job failed of it (84, with the sentence
            # checked below); a job that succeeded all the same was missed and must have left a whole image
            out.hit = out.status == 84
        want = expected_status(role, operation) if out.hit else {0}
        if role == "media" and not out.hit:
            want = {0} | expected_status(role, operation)   # it died as it answered a stripe's commit
        if out.status not in want:
            out.problems.append(f"job {job_id} ended with status {out.status} ({job.get('message')}); "
                                f"expected {sorted(want)}")
        said = " ".join(str(j.get("message") or "") for j in [job, *job.get("children", [])])
        sentence = {"disk_full": "No space left on device (ENOSPC); free space on the storage unit",
                    "read_only": "Read-only file system (EROFS); the storage unit's file system is read-only"}
        if out.hit and out.status == 84 and role in sentence and sentence[role] not in said:
            out.problems.append(f"job {job_id} does not say what is wrong and what to do: {said[:300]}")
        t = time.monotonic()
        self._check(out, before, operation, target if out.hit else None, pre, image)
        out.timings["check"] = time.monotonic() - t
        if killed_daemon and out.injected:
            stray = wait_gone([p for p in family if p and p != self.daemon_pid], 15)
            if stray:
                out.problems.append(f"processes of the killed daemon still run: "
                                    f"{[(p, _cmdline(p)) for p in stray]}")
        out.seconds = time.monotonic() - t0
        return out

    def _drive(self, start, inject, *, daemon_dies: bool, data_path: bool,
               restore: bool = False) -> tuple[int, dict | None, bool]:
        """Start the job, inject at a random point, wait for its end (or the daemon's)."""
        rng = self.rng
        plan = {"by_time": (not data_path or restore) and rng.random() < (0.5 if restore else 0.25)}
        delay = rng.uniform(0.02, 0.3) if restore else rng.uniform(0.05, 1.0)
        fraction = rng.uniform(0.02, 0.6) if data_path else rng.uniform(0.02, 0.9)
        watch_unit = data_path and not restore
        unit_delay = rng.uniform(0.0, 0.05)

        async def go(client):
            queue: asyncio.Queue = asyncio.Queue()

            async def pump():
                try:
                    async for e in client.events():
                        await queue.put(e)
                except Exception as e:  # the daemon went away
                    await queue.put({"event": "stream_ended", "error": str(e)})
                await queue.put({"event": "stream_ended"})

            task = asyncio.create_task(pump())
            first = await queue.get()
            assert first["event"] == "connected", first
            jobs = await start(client)
            parent = jobs if isinstance(jobs, int) else jobs[0]
            t0 = time.monotonic()
            done: dict[int, int] = {}
            expected: dict[int, int] = {}
            fired = hit = False
            ended = None

            async def running(job_id):
                """Still running: for faults in the data path, some stripe must still be moving."""
                try:
                    job = await client.job(job_id)
                except Exception:  # the daemon went away with it
                    return True
                if job.get("state") == "done":
                    return False
                if not data_path:
                    return True
                return any(c.get("type") == "stripe" and c.get("state") != "done" for c in job.get("children", []))
            writing_since = None
            try:
                while True:
                    by_time = plan["by_time"]
                    timeout = max(0.01, t0 + delay - time.monotonic()) if (by_time and not fired) else 120
                    if watch_unit and not fired:
                        # a storage fault strikes while stripes are being written: a random moment after
                        # the first temporary appears on the storage unit (the media server writes a
                        # small stripe out only at its commit, so progress events come too late)
                        timeout = 0.005
                        if self.temporaries():
                            writing_since = writing_since or time.monotonic()
                            if time.monotonic() >= writing_since + unit_delay:
                                fired = inject((sum(done.values()), sum(expected.values())))
                                hit = await running(parent)
                    try:
                        e = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        if watch_unit:
                            continue
                        if by_time and not fired:
                            hit = await running(parent)
                            fired = inject((sum(done.values()), sum(expected.values())))
                            plan["by_time"] = fired   # no such process yet: fall back to a byte count
                            if fired:
                                hit = hit and (not data_path or await running(parent))
                                if daemon_dies:
                                    return parent, None, hit
                            continue
                        raise AssertionError(f"job {parent}: no event for 120 s") from None
                    kind = e.get("event")
                    if kind == "stream_ended":
                        break
                    if kind == "job_progress" and e.get("parent_id") == parent:
                        done[e["job_id"]] = e.get("bytes_done") or 0
                        expected[e["job_id"]] = e.get("bytes_expected") or 0
                        total = sum(expected.values())
                        if (not fired and not by_time and not watch_unit and total
                                and sum(done.values()) >= fraction * total):
                            hit = await running(parent)
                            fired = inject((sum(done.values()), total))
                            if fired:
                                hit = hit and (not data_path or await running(parent))
                                if daemon_dies:
                                    return parent, None, hit
                    elif kind == "job_ended" and e.get("job_id") == parent:
                        ended = e
                        break
            finally:
                task.cancel()
            return parent, ended, fired and hit

        return self.call(go)

    def _wait_idle(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.call(lambda c: c.jobs(active=True, limit=1000)):
                return
            time.sleep(0.1)
        raise AssertionError(f"jobs still active after {timeout} s: {self.call(lambda c: c.jobs(active=True))}")

    # -- the invariants
    def _verify(self, backup_id: str) -> dict:
        return self.run_job(lambda c: c.verify(backup_id))

    def _check(self, out: Outcome, before: dict, operation: str, failed_target: str | None,
               pre: tuple | None, restored: str | None) -> None:
        now = {i["backup_id"]: i for i in self.images()}
        # (b) nothing earlier lost
        lost = sorted(set(before) - set(now))
        out.images_lost = len(lost)
        if lost:
            out.problems.append(f"images lost: {lost}")
        # (a) every visible image whole on the storage unit, and verified (all verify jobs at once)
        verified = self.run_jobs([lambda c, b=b: c.verify(b) for b in now])
        for (bid, image), job in zip(now.items(), verified, strict=True):
            objs = image["stripes"]
            whole = len(objs) == image["stripe_count"] and sorted(o["stripe"] for o in objs) == list(
                range(image["stripe_count"]))
            for o in objs:
                f = self.unit / o["name"]
                if not f.is_file() or f.stat().st_size != o["bytes"]:
                    whole = False
            if not whole or job["status"] != 0:
                out.half_visible += 1
                out.problems.append(f"image {bid} is not whole: verify status {job['status']} {job.get('message')}")
            if bid not in self.expect and whole and job["status"] == 0 and pre is not None:
                # stored whole before the fault struck (e.g. the daemon killed after the catalog commit)
                self.expect[bid] = (pre[0], image["type"], pre[1])
                out.kept += 1
                if pre[0] == "logdb" and image["type"] == "T":
                    self.log_state = pre[1]
            elif bid not in self.expect:
                out.problems.append(f"image {bid} appeared from the faulted job but is not whole")
        # a sample restores bit-exact
        full = [b for b in before if self.expect.get(b, ("",))[0] == "mydb"]
        sample = [self.rng.choice(full)] if full else []
        for bid in sample:
            self.restores += 1
            target = f"r{self.restores}"
            job = self.run_job(lambda c, b=bid, t=target: c.restore_image(b, database=t))
            out.restores_checked += 1
            if job["status"] != 0 or self.digests("mydb", self.s.db_file(target)) != self.expect[bid][2]:
                out.problems.append(f"restore of {bid} into {target}: status {job['status']} "
                                    f"{job.get('message')}; digests differ or restore failed")
            self._sql(f"drop database {target}\ngo\n")
        if failed_target is not None and out.status == 0:    # the fault came too late to matter
            out.restores_checked += 1
            if self.digests("mydb", self.s.db_file(failed_target)) != self.expect[restored][2]:
                out.problems.append(f"the restore into {failed_target} ended 0 but its tables differ")
            self._sql(f"drop database {failed_target}\ngo\n")
        elif failed_target is not None:   # the restore the fault broke: again, into the same database
            bid = restored
            job = self.run_job(lambda c, b=bid, t=failed_target: c.restore_image(b, database=t))
            out.restores_checked += 1
            if job["status"] != 0 or self.digests("mydb", self.s.db_file(failed_target)) != self.expect[bid][2]:
                out.problems.append(f"restore again into {failed_target} after the fault: status {job['status']} "
                                    f"{job.get('message')}")
            else:
                self._sql(f"drop database {failed_target}\ngo\n")
        if operation == "logdump":      # the log chain still restores to the last stored state
            self._check_log_chain(out)
        # (c) the next backup
        try:
            if operation == "logdump":
                self.change("logdb", 20)
                self.must_backup("logdb", "tran_logdb")
                self._check_log_chain(out)
            else:
                self.must_backup("mydb")
        except AssertionError as e:
            out.next_backup_failed += 1
            out.problems.append(f"the next backup failed: {e}")
        # (d) cleanup leaves no orphan
        r = sybar(self.home, "cleanup", "--json")
        if r.returncode != 0:
            out.problems.append(f"sybar cleanup failed: {r.stdout} {r.stderr}")
        out.problems += self.orphans()

    def _check_log_chain(self, out: Outcome) -> None:
        fulls = [b for b, (db, t, _) in self.expect.items() if db == "logdb" and t == "D"]
        newest = max(fulls, key=lambda b: self.call(lambda c, b=b: c.image(b))["backup_time_unix"])
        self.restores += 1
        target = f"r{self.restores}"
        job = self.run_job(lambda c: c.restore_image(newest, database=target))
        out.restores_checked += 1
        got = self.digests("logdb", self.s.db_file(target)) if job["status"] == 0 else None
        if got != self.log_state:
            out.problems.append(f"the log chain from {newest} into {target}: status {job['status']} "
                                f"{job.get('message')}; the state differs from the last stored log dump")
        with contextlib.suppress(AssertionError):
            self._sql(f"drop database {target}\ngo\n")

    def orphans(self) -> list[str]:
        problems = []
        names = {o["name"] for i in self.images() for o in i["stripes"]}
        stored = {p.name for p in self.unit.iterdir() if p.is_file() and not p.name.startswith(".")}
        if stored != names:
            problems.append(f"storage unit vs catalog: only stored {sorted(stored - names)}, "
                            f"only catalogued {sorted(names - stored)}")
        incoming = self.unit / ".incoming"
        if incoming.exists() and any(incoming.iterdir()):
            problems.append(f"temporaries left: {sorted(p.name for p in incoming.iterdir())}")
        con = sqlite3.connect(f"file:{self.home / 'catalog.db'}?mode=ro", uri=True)
        try:
            states = dict(con.execute("select state, count(*) from images group by state").fetchall())
        finally:
            con.close()
        if set(states) - {"complete"}:
            problems.append(f"catalog images by state: {states}")
        dbs = {p.name.split(".db")[0] for p in (self.home / "data").glob("*.db")}
        stray = [p.name for p in (self.home / "data").iterdir()
                 if not any(p.name in (f"{d}.db", f"{d}.db-wal", f"{d}.db-shm") for d in dbs)]
        if stray:
            problems.append(f"stray files beside the databases: {sorted(stray)}")
        procs = {p: c for p, c in processes_of_home(self.home).items()
                 if p not in (self.daemon_pid, self.media_pid())}
        if procs:
            problems.append(f"stray processes: {procs}")
        return problems


# -- campaigns -----------------------------------------------------------------------------------

def campaign(root: Path, kinds: list[tuple[str, str]], seed: int, *, per_home: int = 16, log=print) -> list[Outcome]:
    rng = random.Random(seed)
    outcomes: list[Outcome] = []
    rig = None
    try:
        for n, kind in enumerate(kinds):
            if rig is None or rig.faults >= per_home:
                if rig is not None:
                    rig.close()
                rig = Rig(root / f"rig{n}", rng, log=log)
            rig.faults += 1
            try:
                o = rig.fault(*kind)
            except Exception as e:  # the driver itself failed: say so, go on with a new home
                o = Outcome(kind, problems=[f"the fault driver failed: {e!r}"])
                rig.close()
                rig = None
            outcomes.append(o)
            log(f"fault {n + 1}/{len(kinds)} {kind[0]}@{kind[1]}: {'hit' if o.hit else 'missed (job ended first)'}"
                f" at {o.at_bytes}/{o.of_bytes} bytes, status {o.status}, {o.seconds:.1f} s ("
                + ", ".join(f"{k} {v:.1f}" for k, v in o.timings.items()) + ")"
                + (f"; PROBLEMS: {o.problems}" if o.problems else ""))
    finally:
        if rig is not None:
            rig.close()
    return outcomes


def table(outcomes: list[Outcome], seed: int) -> str:
    kinds = Counter(f"{o.kind[0]}@{o.kind[1]}" for o in outcomes if o.hit)
    missed = Counter(f"{o.kind[0]}@{o.kind[1]}" for o in outcomes if not o.hit)
    statuses = Counter(o.status for o in outcomes if o.hit)
    lines = [f"seed {seed}: {len(outcomes)} faults injected, {sum(o.hit for o in outcomes)} while the job ran",
             "", f"{'fault kind':24} {'hit':>5} {'missed':>7}"]
    for k in sorted(set(kinds) | set(missed)):
        lines.append(f"{k:24} {kinds[k]:>5} {missed[k]:>7}")
    lines += [
        "",
        f"whole images kept from faulted jobs: {sum(o.kept for o in outcomes)}",
        "job status of the faulted jobs: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(),
                                                                                      key=lambda x: str(x[0]))),
        f"images lost: {sum(o.images_lost for o in outcomes)}",
        f"half-visible: {sum(o.half_visible for o in outcomes)}",
        f"restores checked: {sum(o.restores_checked for o in outcomes)}",
        f"next-backup failures: {sum(o.next_backup_failed for o in outcomes)}",
        f"faults with problems: {sum(bool(o.problems) for o in outcomes)}",
        f"seconds per fault: {sum(o.seconds for o in outcomes) / max(1, len(outcomes)):.1f}",
    ]
    return "\n".join(lines)


def long_kinds(count: int, rng: random.Random) -> list[tuple[str, str]]:
    kinds = list(LONG_KINDS) * (count // len(LONG_KINDS) + 1)
    kinds = kinds[:count]
    rng.shuffle(kinds)
    return kinds


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(prog="tools/faults", description="the sybar fault suite")
    ap.add_argument("--long", action="store_true", help="the long run (default: the quick one, one fault per kind)")
    ap.add_argument("--count", type=int, default=200, help="faults in the long run (default 200)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kinds", help="only these kinds, once each: ROLE@OPERATION[,ROLE@OPERATION...]")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"sybar fault suite: {'long' if args.long else 'quick'}, seed {seed}", flush=True)
    kinds = long_kinds(args.count, random.Random(seed)) if args.long else list(QUICK_KINDS)
    if args.kinds:
        kinds = [tuple(k.split("@")) for k in args.kinds.split(",")]
    with tempfile.TemporaryDirectory(prefix="sybar-faults-") as tmp:
        outcomes = campaign(Path(tmp), kinds, seed, log=lambda s: print(s, flush=True))
    print()
    print(table(outcomes, seed))
    bad = [o for o in outcomes if o.problems]
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PATH", "")
    os.environ["PATH"] = str(REPO / ".venv" / "bin") + os.pathsep + os.environ["PATH"]
    sys.exit(main())
