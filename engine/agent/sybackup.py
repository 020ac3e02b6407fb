"""NetBackup for Sybase's archive API: what a ``sybackup::`` device does.

For a dump: resolve the device options (device string > the script's
variables > the environment > user config > system config > defaults), check
policy, schedule and its window, name one backup object per stripe, open one
authenticated media-server connection per stripe, make a child job per
stripe under the script's job, and record the image in the catalog only after
every stripe is durably stored. For a load: find the dump the device names,
and read all of its stripes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.archive import keys as data_keys
from engine.archive.client import MediaClient
from engine.archive.names import object_name
from engine.bphdb.runner import environment_of
from engine.config import check_encryption, parse_sybackup_options, resolve_archive_options
from engine.jobs.status import CLIENT_ABORTED, RESTORE_ERROR, SUCCESS, TERMINATED_BY_ADMIN, StatusError
from engine.media.secret import ensure_media_secret

if TYPE_CHECKING:
    from engine.daemon import Daemon

log = logging.getLogger(__name__)

PREFIX = "sybackup::"
#: the dataserver's work files beside a database (engine/dataserver/backup.py names them)
_DATASERVER_TEMP = re.compile(r"\.(?P<db>[^./]+)\.(?:load|logload|logdump\.\d+)\.tmp(?:-journal|-wal|-shm)?")
NO_ENTITY = 227


def is_archive_device(spec: str) -> bool:
    return spec.lower().startswith(PREFIX)


@dataclass
class StripePlan:
    stripe: int
    name: str
    job_id: int
    sink: object = None


@dataclass(eq=False)
class DumpPlan:
    backup_id: str
    parent_job: int
    own_parent: bool                 # a dump run outside any script gets a job of its own
    database: str
    stripes: list[StripePlan]
    storage_unit: str
    started: float
    cancel: threading.Event = field(default_factory=threading.Event)
    expiration: float | None = None
    worm: bool = False                # a WORM storage unit: objects locked until the expiration

    @property
    def sinks(self) -> list:
        return [s.sink for s in self.stripes]


@dataclass
class LoadPlan:
    image: object
    parent_job: int
    own_parent: bool
    stripe_jobs: list[int]
    sources: list
    cancel: threading.Event = field(default_factory=threading.Event)


class ArchiveAgent:
    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self._cancels: dict[int, set[threading.Event]] = {}
        self._secret: bytes | None = None
        self._active_plans: set[DumpPlan] = set()  # dumps under way: their objects are not orphans

    # -- helpers -----------------------------------------------------------------
    def _media(self) -> MediaClient:
        host, port = self.daemon.media.address or ("127.0.0.1", 0)
        if self._secret is None:
            self._secret = ensure_media_secret(self.daemon.home)
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"  # a wildcard listener is reached on loopback (its certificate names 127.0.0.1)
        tls = None
        if getattr(self.daemon, "media_tls", False):
            from engine.tls import client_context

            tls = client_context(self.daemon.home)
        return MediaClient(host, port, self._secret, ssl_context=tls)

    def _watch_cancel(self, job_id: int, event: threading.Event) -> None:
        self._cancels.setdefault(job_id, set()).add(event)
        self.daemon.jobs.register_cancel(job_id, event.set)

    def _unwatch(self, job_id: int, event: threading.Event) -> None:
        events = self._cancels.get(job_id)
        if events:
            events.discard(event)
            if not events:
                self._cancels.pop(job_id, None)

    def cancel_for_job(self, job_id: int) -> None:
        for event in list(self._cancels.get(job_id, ())):
            event.set()

    def _resolve(self, session, devices) -> tuple[object, dict]:
        specs = [d for d in devices]
        opts = [parse_sybackup_options(spec) for spec in specs]
        # every stripe of one command names the same master, client, policy and schedule
        first = {k: v for k, v in opts[0].items() if k != "OBJECT"}
        for i, o in enumerate(opts[1:], start=2):
            other = {k: v for k, v in o.items() if k != "OBJECT"}
            for key in set(first) & set(other):
                if first[key] != other[key]:
                    raise StatusError(
                        6, f"stripe {i} names {key} {other[key]!r} but stripe 1 names {first[key]!r}: every "
                           "stripe of one dump goes to the same master, client, policy and schedule")
        merged = {}
        for o in opts:
            merged.update({k: v for k, v in o.items() if k != "OBJECT"})
        script_env = environment_of(session.client_pid) if session.client_pid and session.local_client else {}
        options = resolve_archive_options(merged, script_env, dict(os.environ), self.daemon.config)
        return options, {"objects": [o.get("OBJECT") for o in opts], "script_env": script_env,
                         "encrypt": merged.get("ENCRYPT")}

    def _encryption(self, device_value, policy) -> bool:
        """Encrypt this dump? -ENCRYPT of the device > the policy's setting > sybar.toml's top level."""
        if device_value is not None:
            return check_encryption(device_value, "the sybackup:: device's -ENCRYPT") != "none"
        setting = getattr(policy, "encryption", None) or getattr(self.daemon.config, "encryption", "none")
        return setting != "none"

    def _key_lookup(self, kid: str) -> bytes | None:
        """From load worker threads (never the event loop): a data key by id from the keyring
        (looked up each time: a key imported or removed takes effect at the next load)."""
        return data_keys.lookup(self.daemon.home.root, kid)

    # -- dump --------------------------------------------------------------------
    async def begin_dump(self, session, database: str, devices: list[str], compression: int | None,
                         dump_type: str = "D", log_info: dict | None = None) -> DumpPlan:
        options, extra = self._resolve(session, devices)
        config = self.daemon.config
        policy = config.policy(options.policy)
        schedule = policy.schedule(options.schedule)
        schedule.check_window_now()
        # the home's data key: created on first need, in the keyring (a blocking call: off the loop)
        data_key = (await asyncio.to_thread(data_keys.ensure, self.daemon.home.root)
                    if self._encryption(extra["encrypt"], policy) else None)
        await self.daemon.media.ensure_running()
        now = time.time()
        jobs = self.daemon.jobs
        parent = session.job_id or self.daemon.job_for_client_pid(
            session.client_pid if session.local_client else None)
        own_parent = parent is None
        if own_parent:
            parent = jobs.start_job(type="dump", client=options.client, policy=policy.name, schedule=schedule.name,
                                    dataserver=session.server.name, database=database)
            jobs.log(parent, f"dump database {database} started from {session.app or 'a client'} "
                             f"(spid {session.spid}) outside any script")
        catalog = self.daemon.catalog
        unit = config.storage_unit_for(policy)
        backup_id = catalog.new_backup_id(options.client, now)
        expiration = schedule.expiration(now)
        catalog.begin_image(
            backup_id=backup_id, client=options.client, dataserver=session.server.name, database=database,
            dump_type=dump_type, policy=policy.name, schedule=schedule.name, schedule_type=schedule.schedule_type,
            keyword=self.daemon.keywords.get(parent, ""), backup_time=now,
            expiration=expiration, compression=compression, job_id=parent,
            stripes=len(devices), storage_unit=unit.name, unlock_time=expiration if unit.worm else None,
            **(log_info or {}),
        )
        when = dt.datetime.fromtimestamp(now)
        pid = session.client_pid or os.getpid()
        plan = DumpPlan(backup_id=backup_id, parent_job=parent, own_parent=own_parent, database=database,
                        stripes=[], storage_unit=unit.name, started=now, expiration=expiration, worm=unit.worm)
        self._active_plans.add(plan)
        media = self._media()
        try:
            for i in range(len(devices)):
                name = object_name(session.server.name, database, dump_type, i, pid, when)
                job = jobs.start_job(type="stripe", parent_id=parent, client=options.client, policy=policy.name,
                                     schedule=schedule.name, dataserver=session.server.name, database=database,
                                     stripe=i, object_name=name, backup_id=backup_id)
                # in the plan before its connection opens: a media server that dies right now must still
                # see this stripe's job ended by fail_dump, never left active
                plan.stripes.append(StripePlan(i, name, job))
                sink = await asyncio.to_thread(media.store, name, unit.name, job_id=job)
                sink.data_key = data_key  # the Backup Server encrypts every block with it
                plan.stripes[-1].sink = sink
                jobs.log(job, f"stripe {i + 1} of {len(devices)}: backup object {name} to storage unit {unit.name}"
                              + (f", encrypted (AES-256-GCM, data key {data_key.id})" if data_key else ""))
        except BaseException as e:
            await self.fail_dump(plan, e)
            raise
        self._watch_cancel(parent, plan.cancel)
        for s in plan.stripes:
            self._watch_cancel(s.job_id, plan.cancel)
        return plan

    def progress(self, plan, p) -> None:
        """From Backup Server worker threads: a stripe moved."""
        self.daemon.jobs.progress(plan.stripes[p.stripe].job_id, p.bytes_done, p.bytes_total)

    async def commit_dump(self, plan: DumpPlan, result) -> object:
        catalog = self.daemon.catalog
        if plan.worm and plan.expiration is not None:
            # WORM: the storage unit locks every object until the unlock time before the image exists
            from engine.agent.expire import lock_object

            media = self._media()
            for s in plan.stripes:
                await asyncio.to_thread(lock_object, media, s.name, plan.storage_unit, plan.expiration)
            self.daemon.jobs.log(plan.parent_job, f"WORM: {len(plan.stripes)} objects locked on storage unit "
                                                  f"{plan.storage_unit} until the image expires")

        def record():
            # the image's durable commit fsyncs: off the event loop
            for s in plan.stripes:
                info = s.sink.result
                catalog.add_object(plan.backup_id, stripe=s.stripe, name=s.name, storage_unit=plan.storage_unit,
                                   bytes=info["bytes"], raw_bytes=info.get("raw_bytes", 0),
                                   checksum=info["checksum"])
            return catalog.commit_image(plan.backup_id, dump_id=result.dump_id)

        work = asyncio.ensure_future(asyncio.to_thread(record))
        try:
            image = await asyncio.shield(work)
        except asyncio.CancelledError:
            # the client went away while the catalog commits: let the commit end first, so that fail_dump
            # sees whether the image exists (and never removes the objects of an image that does)
            with contextlib.suppress(BaseException):
                await work
            raise
        for s in plan.stripes:
            self.daemon.jobs.end_job(s.job_id, SUCCESS, f"backup object {s.name} stored")
        self.daemon.jobs.log(plan.parent_job, f"image {plan.backup_id} recorded: {len(plan.stripes)} stripes, "
                                              f"{image.kbytes} KB")
        if plan.own_parent:
            self.daemon.jobs.end_job(plan.parent_job, SUCCESS, f"image {plan.backup_id} recorded")
        self._forget(plan)
        return image

    async def fail_dump(self, plan: DumpPlan, error: BaseException) -> None:
        status = error.status if isinstance(error, StatusError) else (
            TERMINATED_BY_ADMIN if plan.cancel.is_set() else
            CLIENT_ABORTED if isinstance(error, asyncio.CancelledError | GeneratorExit) else 84)
        if plan.cancel.is_set():
            status = TERMINATED_BY_ADMIN
        message = str(error) or type(error).__name__
        if status == CLIENT_ABORTED and isinstance(error, asyncio.CancelledError | GeneratorExit):
            # nobody cancelled the job: the client's connection went away (isql killed or its script stopped)
            message = ("the client that ran the dump went away before the dump ended (client process aborted); "
                       "nothing of this dump was kept: run the backup again")
        catalog = self.daemon.catalog
        pending = False
        with contextlib.suppress(Exception):
            pending = catalog.fail_image(plan.backup_id, message)
        media = self._media()
        for s in plan.stripes:
            if s.sink is not None:
                # a stripe stored before another failed is garbage now: no half image, no orphan. But never
                # the objects of an image the catalog committed (a cancel that came during its commit):
                # aborting a committed sink removes its object. Cleanup removes what no image holds.
                if pending or s.sink.result is None:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(s.sink.abort)
                if pending:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(media.remove, s.name)
            self.daemon.jobs.end_job(s.job_id, status, message)
        if plan.own_parent:
            self.daemon.jobs.end_job(plan.parent_job, status, message)
        self._forget(plan)

    def _forget(self, plan) -> None:
        self._active_plans.discard(plan)
        self._unwatch(plan.parent_job, plan.cancel)
        for s in getattr(plan, "stripes", []):
            self._unwatch(s.job_id, plan.cancel)

    # -- load --------------------------------------------------------------------
    def find_image(self, names: list[str | None], database_hint: str | None = None):
        catalog = self.daemon.catalog
        named = [n for n in names if n]
        if not named:
            raise StatusError(
                RESTORE_ERROR, "the load names no dump: put the backup object's name (or its prefix such as "
                               "SYBAR.mydb.D for the latest full dump of mydb) in the device string, "
                               "e.g. \"sybackup::SYBAR.mydb.D\"")
        images = {}
        for n in named:
            image = catalog.find_dump(n)
            if image is None:
                raise StatusError(NO_ENTITY, f"no dump in the catalog is named {n!r} (`sybar list` shows the "
                                             "images and their backup objects)")
            images[image.backup_id] = image
        self.daemon.catalog.check_images(list(images), "load from " + ", ".join(sorted(images)))
        if len(images) > 1:
            raise StatusError(RESTORE_ERROR, "the stripes of this load name different dumps ("
                              + ", ".join(sorted(images)) + "): name the stripes of one dump")
        return next(iter(images.values()))

    async def begin_load(self, session, database: str, devices: list[str], dump_type: str = "D") -> LoadPlan:
        options, extra = self._resolve(session, devices)
        image = self.find_image(extra["objects"])
        if image.dump_type != dump_type:
            what = {"D": "a full database dump", "T": "a transaction log dump"}
            raise StatusError(RESTORE_ERROR, f"{image.backup_id} is {what[image.dump_type]}: load "
                                             f"{'database' if image.dump_type == 'D' else 'transaction'} reads it, "
                                             f"not load {'transaction' if dump_type == 'T' else 'database'}")
        await self.daemon.media.ensure_running()
        jobs = self.daemon.jobs
        parent = session.job_id or self.daemon.job_for_client_pid(
            session.client_pid if session.local_client else None)
        own_parent = parent is None
        if own_parent:
            parent = jobs.start_job(type="load", client=options.client, dataserver=session.server.name,
                                    database=database, backup_id=image.backup_id)
        jobs.log(parent, f"load database {database} from image {image.backup_id} ({image.database}, "
                         f"{len(image.objects)} stripes)")
        media = self._media()
        plan = LoadPlan(image=image, parent_job=parent, own_parent=own_parent, stripe_jobs=[], sources=[])
        try:
            for obj in sorted(image.objects, key=lambda o: o.stripe):
                job = jobs.start_job(type="stripe", parent_id=parent, client=image.client, database=database,
                                     dataserver=session.server.name, stripe=obj.stripe, object_name=obj.name,
                                     backup_id=image.backup_id)
                plan.stripe_jobs.append(job)
                source = await asyncio.to_thread(media.fetch, obj.name)
                source.key_lookup = self._key_lookup  # an encrypted stripe's key, by the id its header names
                plan.sources.append(source)
        except BaseException as e:
            await self.end_load(plan, e)
            raise
        self._watch_cancel(parent, plan.cancel)
        return plan

    def load_progress(self, plan: LoadPlan, p) -> None:
        self.daemon.jobs.progress(plan.stripe_jobs[p.stripe], p.bytes_done, p.bytes_total)

    async def end_load(self, plan: LoadPlan, error: BaseException | None) -> None:
        for src in plan.sources:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(src.close)
        if error is None:
            status, message = SUCCESS, f"image {plan.image.backup_id} read back and verified"
        else:
            status = TERMINATED_BY_ADMIN if plan.cancel.is_set() else (
                error.status if isinstance(error, StatusError) else
                CLIENT_ABORTED if isinstance(error, asyncio.CancelledError | GeneratorExit) else RESTORE_ERROR)
            message = str(error) or type(error).__name__
            if status == CLIENT_ABORTED and isinstance(error, asyncio.CancelledError | GeneratorExit):
                message = ("the client that ran the load went away before the load ended (client process "
                           "aborted); the target database was not changed: run the restore again")
        for job in plan.stripe_jobs:
            self.daemon.jobs.end_job(job, status, message)
        if plan.own_parent:
            self.daemon.jobs.end_job(plan.parent_job, status, message)
        self._unwatch(plan.parent_job, plan.cancel)

    # -- restore of an image, without a script --------------------------------------
    def plan(self, backup_id: str, database: str | None, until: str | None):
        """The images and statements that restore BACKUP_ID (and its log dumps up to UNTIL)."""
        from engine.agent.plan import parse_time, plan_restore
        from engine.dataserver.session import valid_database_name

        image = self.daemon.catalog.get_image(backup_id)
        if image is None:
            raise StatusError(NO_ENTITY, f"no image {backup_id} in the catalog: `sybar list` shows the images")
        if image.dump_type != "D":
            raise StatusError(RESTORE_ERROR, f"{backup_id} is a log dump: a restore starts from a full dump "
                                             "(`sybar list --type D`)")
        target = database or image.database
        try:
            valid_database_name(target)
        except Exception as e:
            raise StatusError(RESTORE_ERROR, str(getattr(e, "text", e))) from None
        exists = self.daemon.dataserver.master.get(target) is not None
        plan = plan_restore(self.daemon.catalog, backup_id, until=parse_time(until) if until else None,
                            target=target, target_exists=exists)
        # a record edited outside sybar is never restored from
        self.daemon.catalog.check_images([i.backup_id for i in plan.images], f"restore image {backup_id}")
        return plan

    async def restore_image(self, backup_id: str, database: str | None, until: str | None = None) -> int:
        plan = await asyncio.to_thread(self.plan, backup_id, database, until)
        image = plan.images[0]
        job = self.daemon.jobs.start_job(type="restore", client=image.client, dataserver=self.daemon.dataserver.name,
                                         database=plan.target, backup_id=backup_id, policy=image.policy,
                                         schedule=image.schedule)
        for i in plan.images:
            self.daemon.jobs.log(job, f"uses {i.backup_id} ({'full dump' if i.dump_type == 'D' else 'log dump'}, "
                                      f"{len(i.objects)} stripes)")
        self.daemon._spawn(self._restore(job, plan.statements, plan.target))
        return job

    async def _restore(self, job: int, statements: list[str], target: str) -> None:
        jobs = self.daemon.jobs
        server = self.daemon.dataserver
        session = server.internal_session()
        session.job_id = job
        status, message = SUCCESS, f"restored into {target}, online"
        try:
            for sql in statements:
                jobs.log(job, "> " + sql.replace("\n", " "))
                async for reply in session.execute(sql):
                    text = getattr(reply, "text", None)
                    if text is None:
                        continue
                    number = getattr(reply, "number", 0)
                    severity = getattr(reply, "severity", 10)
                    if severity > 10:
                        jobs.log(job, f"Msg {number}, Level {severity}: {text}")
                        raise StatusError(RESTORE_ERROR, text)
                    jobs.log(job, text)
        except StatusError as e:
            status, message = e.status, str(e)
        except asyncio.CancelledError:
            status, message = TERMINATED_BY_ADMIN, "termination requested by administrator"
        except Exception as e:
            log.exception("restore into %s failed", target)
            status, message = 130, f"system error: {e}"
        finally:
            await session.close()
            jobs.end_job(job, status, message)

    # -- verify ----------------------------------------------------------------------
    async def verify_image(self, backup_id: str) -> int:
        image = self.daemon.catalog.get_image(backup_id)
        if image is None:
            raise StatusError(NO_ENTITY, f"no image {backup_id} in the catalog: `sybar list` shows the images")
        job = self.daemon.jobs.start_job(type="verify", client=image.client, database=image.database,
                                         backup_id=backup_id, dataserver=image.dataserver)
        self.daemon._spawn(self._verify(job, image))
        return job

    async def _verify(self, job: int, image) -> None:
        jobs = self.daemon.jobs
        status, message = SUCCESS, f"all {len(image.objects)} stripes of {image.backup_id} verified"
        try:
            await self.daemon.media.ensure_running()
            media = self._media()
            results = await asyncio.gather(*(asyncio.to_thread(media.verify, o.name) for o in image.objects),
                                           return_exceptions=True)
            problems = []
            for obj, result in zip(image.objects, results, strict=True):
                if isinstance(result, BaseException):
                    problems.append((getattr(result, "status", RESTORE_ERROR),
                                     f"image {image.backup_id}, stripe {obj.stripe} ({obj.name}): {result}"))
                elif result.get("checksum") != obj.checksum or result.get("bytes") != obj.bytes:
                    problems.append((RESTORE_ERROR, f"image {image.backup_id}, stripe {obj.stripe} ({obj.name}): "
                                                    "stored object does not "
                                                    f"match the catalog ({result.get('bytes')} bytes, checksum "
                                                    f"{result.get('checksum')}; catalog {obj.bytes} bytes, "
                                                    f"{obj.checksum})"))
                else:
                    jobs.log(job, f"stripe {obj.stripe} ({obj.name}): {result.get('blocks', '?')} blocks, "
                                  f"{obj.bytes} bytes, checksum ok")
            for _, text in problems:
                jobs.log(job, text)
            if problems:
                status, message = problems[0][0], problems[0][1]
        except StatusError as e:
            status, message = e.status, str(e)
        finally:
            with contextlib.suppress(Exception):
                self.daemon.catalog.set_verified(image.backup_id, status, time.time())
            jobs.end_job(job, status, message)

    # -- cleanup ---------------------------------------------------------------------
    def _busy_names(self) -> set[str]:
        names = set()
        for plan in list(self._active_plans):
            names.update(s.name for s in plan.stripes)
        return names

    def _dead_dataserver_temporaries(self) -> list[str]:
        """Work files of loads and log dumps a killed daemon left beside the databases. Runs on the event
        loop with no await, so no load or dump can start between the busy check and the unlink."""
        server = self.daemon.dataserver
        removed = []
        for path in server.master.data_dir.glob(".*.tmp*"):
            m = _DATASERVER_TEMP.fullmatch(path.name)
            if m and not server.busy.get(m["db"]):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path.name)
                    log.info("cleanup: removed %s, left by a load or log dump that did not end", path)
        return removed

    async def cleanup(self) -> dict:
        """Remove what failed or killed backups left: half images, orphan objects, temporaries."""
        catalog = self.daemon.catalog
        removed_images, removed_objects, removed_temporaries = [], [], []
        active = {j.job_id for j in catalog.list_jobs(active_only=True, limit=100000)}
        for image in catalog.leftovers(older_than=time.time()):
            if image.job_id in active:
                continue  # still being written
            catalog.remove_image(image.backup_id)
            removed_images.append(image.backup_id)
        await self.daemon.media.ensure_running()
        media = self._media()
        known = catalog.object_names()
        busy = self._busy_names()
        locked_objects = []
        for unit in self.daemon.config.storage_units:
            for info in await asyncio.to_thread(lambda u=unit: list(media.list("", unit=u))):
                if info.name not in known and info.name not in busy:
                    if catalog.seal_problems:
                        # an image record deleted outside sybar makes its objects look orphaned: keep them
                        locked_objects.append(info.name)
                        continue
                    try:
                        await asyncio.to_thread(media.remove, info.name, unit)
                    except StatusError as e:
                        if e.status != 88:  # WORM-locked: it stays until its unlock time
                            raise
                        locked_objects.append(info.name)
                        continue
                    removed_objects.append(info.name)
            for temp in await asyncio.to_thread(media.temporaries, unit):
                if not temp.in_use and await asyncio.to_thread(media.remove_temporary, temp, unit):
                    removed_temporaries.append(temp.name)
        removed_temporaries += self._dead_dataserver_temporaries()
        for name in removed_objects:
            log.info("cleanup: removed orphan object %s", name)
        return {"images": removed_images, "objects": removed_objects, "temporaries": removed_temporaries,
                "kept": locked_objects}
