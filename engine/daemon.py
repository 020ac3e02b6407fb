"""`sybar serve`: every role of one home in one daemon (the embedded default).

master (catalog, jobs, events, bphdb, control API), dataserver (TDS 5.0) and
the supervisor of the media server process. The control API's operations are
the methods below; the CLI and the GUI only ever call them over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from engine import __version__
from engine.agent.sybackup import ArchiveAgent
from engine.bphdb.runner import ScriptContext, ScriptRun, check_script, script_environment
from engine.catalog.catalog import Catalog
from engine.config import load_config
from engine.control.auth import ensure_token
from engine.control.server import serve_control
from engine.dataserver.server import Dataserver, write_client_files
from engine.home import Home, write_private_file
from engine.jobs.events import EventBus
from engine.jobs.manager import JobManager
from engine.jobs.status import (
    BACKUP_FAILED,
    CLIENT_ABORTED,
    RESTORE_ERROR,
    SUCCESS,
    TERMINATED_BY_ADMIN,
    StatusError,
)
from engine.media.supervisor import MediaSupervisor
from engine.tls import Network, ensure_certificates, is_loopback, server_context

log = logging.getLogger(__name__)

NO_ENTITY = 227  # NetBackup: no entity was found
DEEP_CHECK_AT_START = 200_000  # images: the whole catalog's seals are checked at each start up to this many


def _url_host(host: str) -> str:
    """A listening address as clients reach it: a wildcard is reached on loopback; IPv6 in brackets."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Daemon:
    def __init__(self, home: Home, name: str = "SYBAR", network: Network | None = None):
        self.network = network or Network()   # where control and media listen; TLS off loopback
        self.home = home
        self.config = load_config(home)
        from engine.catalog.seal import KeyringHead, catalog_key

        seal_key, key_is_new = catalog_key(home.root)  # the catalog's seal key, from the OS keyring
        self.catalog = Catalog(home.root / "catalog.db", seal_key=seal_key, key_is_new=key_is_new,
                               head_keeper=KeyringHead(home.root))
        for problem in self.catalog.seal_problems:
            log.error("catalog seal check: %s", problem)
        self.bus = EventBus()
        self.jobs = JobManager(self.catalog, self.bus)
        self.dataserver = Dataserver(home, name)
        self.agent = ArchiveAgent(self)
        from engine.agent.expire import Expirer

        self.expirer = Expirer(self.agent)
        self.dataserver.archive = self.agent
        self.media = MediaSupervisor(home, {u.name: str(u.path) for u in self.config.storage_units.values()},
                                     host=self.network.media[0], port=self.network.media[1],
                                     on_start=self._media_started)
        self.token = ensure_token(home)
        self.script_jobs: dict[int, int] = {}      # script pid (= session id of what it starts) -> job id
        self._runs: dict[int, ScriptRun] = {}       # job id -> running script
        self.keywords: dict[int, str] = {}          # backup job id -> its keyword phrase
        self._tasks: set[asyncio.Task] = set()
        self._control = None
        self.addresses: dict[str, str] = {}
        self._started = time.time()

    # -- life --------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        self.jobs.bind_loop(asyncio.get_running_loop())
        # jobs a previous daemon left running died with it: end them (status 50, client process aborted)
        self.jobs.recover_interrupted()
        ds_host, ds_port = await self.dataserver.start(host, port)
        write_client_files(self.home, self.dataserver.name, ds_host, ds_port)
        self.addresses["dataserver"] = f"{ds_host}:{ds_port}"
        # the home CA and server certificate (made on first start): TLS on every listener off loopback
        ensure_certificates(self.home, (host, self.network.control[0], self.network.media[0]))
        c_tls = not is_loopback(self.network.control[0])
        self._control, (c_host, c_port) = await serve_control(
            self, self.token, *self.network.control, ssl_context=server_context(self.home) if c_tls else None)
        self.addresses["control"] = f"{'https' if c_tls else 'http'}://{_url_host(c_host)}:{c_port}"
        await self.media.ensure_running()  # writes control.json through _media_started
        self._spawn(self._deep_seal_check())

    async def _deep_seal_check(self) -> None:
        """Off the event loop: seal what a first keyed open left to seal (a large catalog's
        migration), then check every seal once per start when the catalog is not too large
        (the open check, the per-image checks and `sybar catalog check` guard meanwhile)."""
        sealed = await asyncio.to_thread(self.catalog.seal_migration)
        if sealed:
            log.info("catalog: %d existing images sealed in %.1f s", sealed,
                     self.catalog.seal_stats.get("migration_s", 0.0))
        count = await asyncio.to_thread(self.catalog.count_images)
        if count > DEEP_CHECK_AT_START:
            log.info("catalog seal: %d images, more than %d: the full check runs on `sybar catalog check`",
                     count, DEEP_CHECK_AT_START)
            return
        result = await asyncio.to_thread(self.catalog.deep_check)
        log.info("catalog seal check: %d images, %d entries in %.2f s", result["images"], result["entries"],
                 result["seconds"])
        for problem in result["problems"]:
            log.error("catalog seal check: %s", problem)

    def _media_started(self, address: tuple[str, int]) -> None:
        self.addresses["media"] = f"{address[0]}:{address[1]}"
        if "control" in self.addresses:
            self._write_state()

    def _write_state(self) -> None:
        """HOME/control.json: where the CLI and the GUI find this daemon and its roles."""
        write_private_file(self.home.root / "control.json", json.dumps({
            "url": self.addresses["control"], "pid": os.getpid(), "dataserver": self.addresses["dataserver"],
            "media": self.addresses.get("media"), "media_pid": self.media.pid, "started": self._started,
            "tls": {"control": self.addresses["control"].startswith("https:"), "media": self.media_tls},
        }) + "\n")

    async def stop(self) -> None:
        self.catalog.stop_background()  # a seal migration or check on a thread ends at its next chunk
        for run in list(self._runs.values()):
            await run.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._control is not None:
            await self._control.cleanup()
        (self.home.root / "control.json").unlink(missing_ok=True)
        await self.media.stop()
        await self.dataserver.stop()

    @property
    def media_tls(self) -> bool:
        """The media server speaks TLS when it listens off loopback (engine/media/main.py decides the same)."""
        return not is_loopback(self.network.media[0])

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- who started this isql? ----------------------------------------------------
    def job_for_client_pid(self, pid: int | None) -> int | None:
        from engine.bphdb.runner import session_of

        if not pid:
            return None
        sid = session_of(pid)
        return self.script_jobs.get(sid) if sid else None

    # -- control API operations -----------------------------------------------------
    def status(self) -> dict:
        return {
            "version": __version__, "home": str(self.home.root), "pid": os.getpid(),
            "roles": ["master", "dataserver", "media"], "dataserver_name": self.dataserver.name,
            "addresses": dict(self.addresses), "media_pid": self.media.pid,
            "master_server": self.config.master_server, "client": self.config.client,
            "default_policy": self.config.default_policy, "default_schedule": self.config.default_schedule,
            "catalog_seal": {"ok": not self.catalog.seal_problems, "problems": list(self.catalog.seal_problems)},
        }

    def _policy_schedule(self, policy: str | None, schedule: str | None):
        pol = self.config.policy(policy or self.config.default_policy)
        sched = pol.schedule(schedule or self.config.default_schedule)
        return pol, sched

    async def start_backup(self, scripts: list[str], *, policy=None, schedule=None, keyword=None) -> list[int]:
        pol, sched = self._policy_schedule(policy, schedule)
        sched.check_window_now()
        checked = [check_script(s) for s in scripts]   # all or nothing: refuse before anything runs
        ids = []
        for script in checked:
            job_id = self.jobs.start_job(type="backup", client=self.config.client, policy=pol.name,
                                         schedule=sched.name, script=str(script),
                                         dataserver=self.dataserver.name)
            ctx = ScriptContext(job_id=job_id, master_server=self.config.master_server, client=self.config.client,
                                policy=pol.name, schedule=sched.name, schedule_type=sched.schedule_type,
                                keyword=keyword or "", home=str(self.home.root))
            if keyword:
                self.keywords[job_id] = keyword
            self._spawn(self._run_script(job_id, script, ctx, "backup"))
            ids.append(job_id)
        return ids

    async def start_restore_script(self, script: str) -> int:
        path = check_script(script)
        pol, sched = self._policy_schedule(None, None)  # restores may run at any time: no window check
        job_id = self.jobs.start_job(type="restore", client=self.config.client, policy=pol.name,
                                     schedule=sched.name, script=str(path), dataserver=self.dataserver.name)
        ctx = ScriptContext(job_id=job_id, master_server=self.config.master_server, client=self.config.client,
                            policy=pol.name, schedule=sched.name, schedule_type=sched.schedule_type,
                            operation="restore", home=str(self.home.root))
        self._spawn(self._run_script(job_id, path, ctx, "restore"))
        return job_id

    async def _run_script(self, job_id: int, script: Path, ctx: ScriptContext, operation: str) -> None:
        from engine.demo import isql_program

        password = await self._script_password()
        run = ScriptRun(script, script_environment(ctx, isql_program()), lambda line: self.jobs.log(job_id, line),
                        stdin_password=password)
        status, message = SUCCESS, ""
        try:
            await run.start()
            self.script_jobs[run.pid] = job_id
            self._runs[job_id] = run
            self.jobs.update(job_id, pid=run.pid)
            self.jobs.log(job_id, f"bphdb: started {script} (pid {run.pid})")
            rc = await run.wait()
            await run.end_session()
            await self._children_settle(job_id)
            status, message = self._script_status(job_id, operation, rc, run.cancelled)
        except StatusError as e:
            status, message = e.status, str(e)
        except Exception as e:  # a bug here must still end the job
            log.exception("running %s failed", script)
            status, message = 130, f"system error while running {script}: {e}"
        finally:
            if run.pid:
                self.script_jobs.pop(run.pid, None)
            self._runs.pop(job_id, None)
            self.keywords.pop(job_id, None)
            self.jobs.log(job_id, f"bphdb: {script} ended: status {status}: {message}")
            self._roll_up_bytes(job_id)
            self.jobs.end_job(job_id, status, message)

    async def _script_password(self) -> str | None:
        """The dataserver login's password from the keyring, for isql programs that prompt for it."""
        from engine import secrets

        if not getattr(self.config, "password_on_stdin", True):
            return None
        try:
            # keyring off the event loop: secretstorage must not touch this loop
            return await asyncio.to_thread(secrets.get_password, self.dataserver.name, "sa")
        except StatusError:
            return None

    def _roll_up_bytes(self, job_id: int) -> None:
        """A script job's bytes are its stripes' (the activity monitor shows them on the parent row)."""
        stripes = [c for c in self.catalog.children(job_id) if c.type == "stripe"]
        if stripes:
            self.jobs.update(job_id, bytes_done=sum(c.bytes_done or 0 for c in stripes),
                             bytes_expected=sum(c.bytes_expected or 0 for c in stripes))

    async def _children_settle(self, job_id: int, timeout_s: float = 60.0) -> None:
        """Wait (bounded) for the stripes of a script that ended: a dump its isql left ends with it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(c.status is None for c in self.catalog.children(job_id)):
            await asyncio.sleep(0.05)

    def _script_status(self, job_id: int, operation: str, rc: int, cancelled: bool) -> tuple[int, str]:
        children = self.catalog.children(job_id)
        failed = [c for c in children if c.status not in (None, 0)]
        moved = [c for c in children if c.type == "stripe" and c.status == 0]
        if cancelled:
            return TERMINATED_BY_ADMIN, "termination requested by administrator: the script was stopped"
        if rc < 0:
            return CLIENT_ABORTED, (f"the script was killed (signal {-rc}) before it ended, and what it had "
                                    "started was stopped: run it again")
        if failed:
            worst = failed[0]
            return worst.status, f"stripe job {worst.job_id} failed: {worst.message}"
        if rc != 0:
            code = BACKUP_FAILED if operation == "backup" else RESTORE_ERROR
            return code, f"the script exited with status {rc} (see the job log)"
        if not moved:
            code = BACKUP_FAILED if operation == "backup" else RESTORE_ERROR
            what = "dump" if operation == "backup" else "load"
            return code, (f"the script exited 0 but ran no {what} through sybackup::, so nothing was "
                          f"{'backed up' if operation == 'backup' else 'restored'}")
        return SUCCESS, "the requested operation was successfully completed"

    async def start_restore_image(self, backup_id: str, database: str | None = None,
                                  until: str | None = None) -> int:
        return await self.agent.restore_image(backup_id, database, until)

    async def plan_restore(self, backup_id: str, database: str | None = None, until: str | None = None) -> dict:
        plan = await asyncio.to_thread(self.agent.plan, backup_id, database, until)
        from engine.agent.plan import format_plan

        return {"plan": format_plan(plan), "statements": plan.statements, "target": plan.target,
                "images": [i.to_json() for i in plan.images]}

    async def start_verify(self, backup_id: str) -> int:
        return await self.agent.verify_image(backup_id)

    async def list_images(self, **filters) -> list[dict]:
        images = await asyncio.to_thread(self.catalog.list_images, **filters)
        return [i.to_json() for i in images]

    async def count_images(self, **filters) -> int:
        return await asyncio.to_thread(self.catalog.count_images, **filters)

    async def catalog_facets(self) -> dict:
        """What the browser's server, client and database filters can choose from."""
        def facets() -> dict:
            return {key + "s": self.catalog.distinct_values(key) for key in ("dataserver", "client", "database")}
        return await asyncio.to_thread(facets)

    async def image_chain(self, backup_id: str, limit: int = 200) -> dict:
        """The log dumps that continue a full dump's chain, for the browser: the first ``limit - 1`` and
        the last (whose last commit bounds a point-in-time restore), how many in all, and its gap."""
        from engine.catalog.chains import log_chain

        chain = await asyncio.to_thread(log_chain, self.catalog, backup_id)
        logs = chain.logs if len(chain.logs) <= limit else [*chain.logs[:max(limit - 1, 0)], chain.logs[-1]]
        return {"logs": [i.to_json() for i in logs], "count": len(chain.logs),
                "gaps": [g.to_json() for g in chain.gaps], "end_time_unix": chain.end_time}

    async def spans(self, database: str, dataserver: str | None = None) -> list[dict]:
        from engine.catalog.chains import restorable_spans

        spans = await asyncio.to_thread(restorable_spans, self.catalog, database, dataserver=dataserver)
        return [s.to_json() for s in spans]

    async def get_image(self, backup_id: str) -> dict:
        image = await asyncio.to_thread(self.catalog.get_image, backup_id)
        if image is None:
            raise StatusError(NO_ENTITY, f"no image {backup_id} in the catalog: `sybar list` shows the images")
        return image.to_json()

    async def list_jobs(self, *, active_only=False, parent_id=None, limit=100) -> list[dict]:
        jobs = await asyncio.to_thread(self.catalog.list_jobs, parent_id=parent_id, active_only=active_only,
                                       limit=limit)
        return [j.to_json() for j in jobs]

    async def get_job(self, job_id: int) -> dict:
        job = await asyncio.to_thread(self.catalog.get_job, job_id)
        if job is None:
            raise StatusError(NO_ENTITY, f"no job {job_id}: `sybar jobs` lists the jobs")
        out = job.to_json()
        out["children"] = [c.to_json() for c in await asyncio.to_thread(self.catalog.children, job_id)]
        return out

    async def job_log(self, job_id: int) -> list:
        return [{"time": t, "line": line} for t, line in await asyncio.to_thread(self.catalog.job_log, job_id)]

    async def cancel_job(self, job_id: int) -> bool:
        run = self._runs.get(job_id)
        hit = self.jobs.cancel(job_id)
        if run is not None:
            self.agent.cancel_for_job(job_id)
            await run.cancel()
            return True
        return hit

    async def cleanup(self) -> dict:
        return await self.agent.cleanup()

    async def expire_due(self) -> dict:
        return await self.expirer.expire_due()

    async def expire_image(self, backup_id: str) -> dict:
        return await self.expirer.expire_now(backup_id)

    async def set_expiration(self, backup_id: str, until) -> dict:
        return await self.expirer.set_expiration(backup_id, until)

    async def catalog_check(self) -> dict:
        return await self.expirer.check()
