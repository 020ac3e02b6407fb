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
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.archive.client import MediaClient
from engine.archive.names import object_name
from engine.bphdb.runner import environment_of
from engine.config import parse_sybackup_options, resolve_archive_options
from engine.jobs.status import RESTORE_ERROR, SUCCESS, TERMINATED_BY_ADMIN, StatusError
from engine.media.server import ensure_media_secret

if TYPE_CHECKING:
    from engine.daemon import Daemon

log = logging.getLogger(__name__)

PREFIX = "sybackup::"
NO_ENTITY = 227


def is_archive_device(spec: str) -> bool:
    return spec.lower().startswith(PREFIX)


@dataclass
class StripePlan:
    stripe: int
    name: str
    job_id: int
    sink: object = None


@dataclass
class DumpPlan:
    backup_id: str
    parent_job: int
    own_parent: bool                 # a dump run outside any script gets a job of its own
    database: str
    stripes: list[StripePlan]
    storage_unit: str
    started: float
    cancel: threading.Event = field(default_factory=threading.Event)

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

    # -- helpers -----------------------------------------------------------------
    def _media(self) -> MediaClient:
        host, port = self.daemon.media.address or ("127.0.0.1", 0)
        if self._secret is None:
            self._secret = ensure_media_secret(self.daemon.home)
        return MediaClient(host, port, self._secret)

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
        return options, {"objects": [o.get("OBJECT") for o in opts], "script_env": script_env}

    # -- dump --------------------------------------------------------------------
    async def begin_dump(self, session, database: str, devices: list[str], compression: int | None,
                         dump_type: str = "D") -> DumpPlan:
        options, _ = self._resolve(session, devices)
        config = self.daemon.config
        policy = config.policy(options.policy)
        schedule = policy.schedule(options.schedule)
        schedule.check_window_now()
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
        unit = config.default_storage_unit
        backup_id = catalog.new_backup_id(options.client, now)
        catalog.begin_image(
            backup_id=backup_id, client=options.client, dataserver=session.server.name, database=database,
            dump_type=dump_type, policy=policy.name, schedule=schedule.name, schedule_type=schedule.schedule_type,
            keyword=self.daemon.keywords.get(parent, ""), backup_time=now,
            expiration=now + schedule.retention_seconds, compression=compression, job_id=parent,
            stripes=len(devices), storage_unit=unit.name,
        )
        when = dt.datetime.fromtimestamp(now)
        pid = session.client_pid or os.getpid()
        plan = DumpPlan(backup_id=backup_id, parent_job=parent, own_parent=own_parent, database=database,
                        stripes=[], storage_unit=unit.name, started=now)
        media = self._media()
        try:
            for i in range(len(devices)):
                name = object_name(session.server.name, database, dump_type, i, pid, when)
                job = jobs.start_job(type="stripe", parent_id=parent, client=options.client, policy=policy.name,
                                     schedule=schedule.name, dataserver=session.server.name, database=database,
                                     stripe=i, object_name=name, backup_id=backup_id)
                sink = await asyncio.to_thread(media.store, name, unit.name, job_id=job)
                plan.stripes.append(StripePlan(i, name, job, sink))
                jobs.log(job, f"stripe {i + 1} of {len(devices)}: backup object {name} to storage unit {unit.name}")
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
        for s in plan.stripes:
            info = s.sink.result
            catalog.add_object(plan.backup_id, stripe=s.stripe, name=s.name, storage_unit=plan.storage_unit,
                               bytes=info["bytes"], raw_bytes=info.get("raw_bytes", 0), checksum=info["checksum"])
        image = catalog.commit_image(plan.backup_id, dump_id=result.dump_id)
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
            TERMINATED_BY_ADMIN if plan.cancel.is_set() or isinstance(error, asyncio.CancelledError) else 84)
        if plan.cancel.is_set():
            status = TERMINATED_BY_ADMIN
        message = str(error) or type(error).__name__
        catalog = self.daemon.catalog
        with contextlib.suppress(Exception):
            catalog.fail_image(plan.backup_id, message)
        media = self._media()
        for s in plan.stripes:
            if s.sink is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(s.sink.abort)
                # a stripe stored before another failed is garbage now: no half image, no orphan
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(media.remove, s.name)
            self.daemon.jobs.end_job(s.job_id, status, message)
        if plan.own_parent:
            self.daemon.jobs.end_job(plan.parent_job, status, message)
        self._forget(plan)

    def _forget(self, plan) -> None:
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
        if len(images) > 1:
            raise StatusError(RESTORE_ERROR, "the stripes of this load name different dumps ("
                              + ", ".join(sorted(images)) + "): name the stripes of one dump")
        return next(iter(images.values()))

    async def begin_load(self, session, database: str, devices: list[str]) -> LoadPlan:
        options, extra = self._resolve(session, devices)
        image = self.find_image(extra["objects"])
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
                plan.sources.append(await asyncio.to_thread(media.fetch, obj.name))
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
                error.status if isinstance(error, StatusError) else RESTORE_ERROR)
            message = str(error) or type(error).__name__
        for job in plan.stripe_jobs:
            self.daemon.jobs.end_job(job, status, message)
        if plan.own_parent:
            self.daemon.jobs.end_job(plan.parent_job, status, message)
        self._unwatch(plan.parent_job, plan.cancel)
