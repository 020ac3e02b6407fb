"""The CLI twins of the GUI: backup, restore, list, verify, jobs, cleanup.

Each finds the home's daemon through the control API (starting one, and
saying so, when none runs), prints what a DBA reads or one JSON document with
--json, and exits with the NetBackup status of what it ran.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from engine.home import Home
from engine.jobs.status import MEANING, SYSTEM_ERROR, StatusError

if TYPE_CHECKING:  # the control client (aiohttp) is imported only when a command runs: `--help` stays quick
    from engine.control.client import ControlClient


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    raise StatusError(SYSTEM_ERROR, f"{text!r} is not a time: use YYYY-MM-DD[ hh:mm[:ss]] (local time)")


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _eta(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Follower:
    """Follows parent jobs to their end, printing stripe progress and log lines."""

    def __init__(self, client: ControlClient, parents: list[int], *, quiet: bool, log_lines: bool = True):
        self.client = client
        self.parents = set(parents)
        self.quiet = quiet
        self.log_lines = log_lines
        self.ended: dict[int, dict] = {}
        self._last_print: dict[int, float] = {}
        self._stripe_of: dict[int, tuple[int, int]] = {}  # job -> (parent, stripe)

    def _out(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    async def run(self) -> dict[int, dict]:
        import asyncio

        connected = asyncio.Event()
        done = asyncio.Event()

        async def consume():
            async for event in self.client.events():
                if event.get("event") == "connected":
                    connected.set()
                    continue
                self._handle(event)
                if self.parents <= set(self.ended):
                    done.set()
                    return

        task = asyncio.create_task(consume())
        try:
            await asyncio.wait_for(connected.wait(), 30)
            # anything that ended before the stream opened
            for job_id in list(self.parents):
                job = await self.client.job(job_id)
                if job.get("state") == "done" and job_id not in self.ended:
                    self.ended[job_id] = job
            if not self.parents <= set(self.ended):
                await done.wait()
        finally:
            task.cancel()
        return self.ended

    def _handle(self, e: dict) -> None:
        kind = e.get("event")
        if kind == "job_started":
            job = e.get("job", {})
            if job.get("parent_id") in self.parents and job.get("type") == "stripe":
                self._stripe_of[job["job_id"]] = (job["parent_id"], job.get("stripe") or 0)
                self._out(f"job {job['parent_id']}: stripe {job.get('stripe', 0) + 1}: job {job['job_id']}, "
                          f"object {job.get('object_name') or ''}")
        elif kind == "job_progress":
            job_id = e["job_id"]
            if e.get("parent_id") not in self.parents:
                return
            now = time.monotonic()
            done_, total = e.get("bytes_done", 0), e.get("bytes_expected")
            if now - self._last_print.get(job_id, 0) < 0.5 and done_ != total:
                return
            self._last_print[job_id] = now
            pct = f"{100 * done_ / total:3.0f}%" if total else "  ?%"
            stripe = e.get("stripe")
            self._out(f"job {e['parent_id']}: stripe {(stripe or 0) + 1}: {_human_bytes(done_)} of "
                      f"{_human_bytes(total or 0)} {pct}  {_human_bytes(e.get('rate') or 0)}/s  "
                      f"ETA {_eta(e.get('eta_s'))}")
        elif kind == "job_log":
            if self.log_lines and e.get("job_id") in self.parents:
                self._out(f"job {e['job_id']}: {e.get('line', '')}")
        elif kind == "job_ended":
            job_id = e["job_id"]
            if job_id in self.parents:
                self.ended[job_id] = {"job_id": job_id, "status": e["status"], "message": e.get("message", "")}


def _exit_status(ended: dict[int, dict]) -> int:
    statuses = [j.get("status") or 0 for j in ended.values()]
    worst = next((s for s in statuses if s), 0)
    return worst if worst < 256 else 252


def _summary(ended: dict[int, dict], verb: str) -> None:
    for job_id, job in sorted(ended.items()):
        status = job.get("status") or 0
        meaning = MEANING.get(status, "")
        print(f"{verb} job {job_id}: status {status}" + (f" ({meaning})" if meaning else "")
              + (f": {job.get('message')}" if job.get("message") else ""), flush=True)


async def _with_client(home: Home, fn):
    from engine.control.client import connect_home

    client = await connect_home(home)
    try:
        return await fn(client)
    finally:
        await client.close()


def run(args) -> int:
    import asyncio

    home = Home.resolve(args.home)
    return asyncio.run(_with_client(home, lambda c: _COMMANDS[args.command](c, args)))


async def cmd_backup(client: ControlClient, args) -> int:
    # the daemon runs elsewhere: a relative path means one relative to where the user typed it
    jobs = await client.backup([os.path.abspath(s) for s in args.scripts], policy=args.policy, schedule=args.schedule,
                               keyword=args.keyword)
    if not args.json:
        print(f"sybar backup: started job{'s' if len(jobs) > 1 else ''} {', '.join(map(str, jobs))}", flush=True)
    ended = await Follower(client, jobs, quiet=args.json).run()
    return await _finish(client, ended, args, "backup")


async def _finish(client, ended, args, verb: str) -> int:
    if args.json:
        details = [await client.job(j) for j in sorted(ended)]
        print(json.dumps({"jobs": details}, default=str, indent=2))
    else:
        _summary(ended, verb)
    return _exit_status(ended)


async def cmd_restore(client: ControlClient, args) -> int:
    if args.plan:
        if not args.image:
            raise StatusError(SYSTEM_ERROR, "--plan needs --image BACKUP_ID (the full dump the chain starts from)")
        plan = await client.restore_plan(args.image, database=args.database, until=args.until)
        print(json.dumps(plan, indent=2, default=str) if args.json else plan["plan"])
        return 0
    if args.image:
        job = await client.restore_image(args.image, database=args.database, until=args.until)
    elif args.until:
        raise StatusError(SYSTEM_ERROR, "--until needs --image BACKUP_ID (the full dump the chain starts from)")
    elif args.script:
        job = await client.restore_script(os.path.abspath(args.script))
    else:
        raise StatusError(SYSTEM_ERROR, "name a restore script, or an image with --image BACKUP_ID")
    if not args.json:
        print(f"sybar restore: started job {job}", flush=True)
    ended = await Follower(client, [job], quiet=args.json).run()
    return await _finish(client, ended, args, "restore")


async def cmd_verify(client: ControlClient, args) -> int:
    job = await client.verify(args.backup_id)
    ended = await Follower(client, [job], quiet=args.json).run()
    return await _finish(client, ended, args, "verify")


def _local(unix: float | None) -> str:
    return "-" if unix is None else dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")


async def cmd_list(client: ControlClient, args) -> int:
    images = await client.images(database=args.database, since=_parse_time(args.since),
                                 until=_parse_time(args.until), type=args.type, keyword=args.keyword,
                                 limit=args.limit)
    if args.json:
        print(json.dumps(images, indent=2, default=str))
        return 0
    if not images:
        print("no images match")
        return 0
    head = f"{'Backed up':19}  {'Expires':19}  {'Database':14} T  {'Stripes':>7}  {'KB':>10}  {'Policy':14} " \
           f"{'Schedule':28} {'Keyword':12} Backup ID"
    print(head)
    print("-" * len(head))
    for i in images:
        print(f"{i['backup_time'][:19].replace('T', ' '):19}  {i['expiration'][:19].replace('T', ' '):19}  "
              f"{i['database']:14} {i['type']}  {len(i['stripes']):>7}  {i.get('kbytes') or 0:>10}  "
              f"{i.get('policy') or '':14} {i.get('schedule') or '':28} {i.get('keyword') or '':12} "
              f"{i['backup_id']}" + ("  WORM (locked until it expires)" if i.get("worm") else ""))
    return 0


async def cmd_jobs(client: ControlClient, args) -> int:
    if args.job_id is not None:
        job = await client.job(args.job_id)
        log = await client.job_log(args.job_id) if args.log else None
        if args.json:
            print(json.dumps({**job, **({"log": log} if log is not None else {})}, indent=2, default=str))
            return 0
        _print_job(job)
        for child in job.get("children", []):
            _print_job(child, indent="    ")
        if log is not None:
            print("log:")
            for entry in log:
                print(f"  {_local(entry['time'])}  {entry['line']}")
        return 0
    jobs = await client.jobs(active=args.active, limit=args.limit)
    if args.json:
        print(json.dumps(jobs, indent=2, default=str))
        return 0
    for job in jobs:
        _print_job(job)
    return 0


def _print_job(job: dict, indent: str = "") -> None:
    status = job.get("status")
    state = job.get("state")
    done, expected = job.get("bytes_done") or 0, job.get("bytes_expected")
    what = job.get("script") or job.get("object_name") or job.get("database") or ""
    print(f"{indent}job {job['job_id']:>5}  {job.get('type', ''):8} {state:7} "
          f"status {'-' if status is None else status:>4}  {_human_bytes(done):>10}"
          f"{' of ' + _human_bytes(expected) if expected else ''}  {what}"
          + (f"  ({job.get('message')})" if job.get("message") and status else ""))


async def cmd_cleanup(client: ControlClient, args) -> int:
    result = await client.cleanup()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for key, values in result.items():
            print(f"{key}: {len(values) if isinstance(values, list) else values}")
            if isinstance(values, list):
                for v in values:
                    print(f"    {v}")
    return 0


_COMMANDS = {
    "backup": cmd_backup, "restore": cmd_restore, "verify": cmd_verify, "list": cmd_list, "jobs": cmd_jobs,
    "cleanup": cmd_cleanup,
}


def add_parsers(sub, add_home) -> None:
    def common(p):
        add_home(p)
        p.add_argument("--json", action="store_true", help="print one JSON document")

    p = sub.add_parser("backup", help="user-directed backup: run Sybase backup scripts through bphdb")
    common(p)
    p.add_argument("scripts", nargs="+", metavar="SCRIPT")
    p.add_argument("--policy")
    p.add_argument("--schedule")
    p.add_argument("--keyword", help="keyword phrase recorded with the image")

    p = sub.add_parser("restore", help="run a restore script, or restore an image with --image")
    common(p)
    p.add_argument("script", nargs="?", metavar="SCRIPT")
    p.add_argument("--image", metavar="BACKUP_ID")
    p.add_argument("--database", metavar="TARGET", help="load into this database (default: the image's)")
    p.add_argument("--until", metavar="TIME",
                   help="point in time, 'YYYY-MM-DD hh:mm:ss[.fff]' in the dataserver's local time: load the "
                        "log dumps after the image up to it")
    p.add_argument("--plan", action="store_true", help="print the images and statements; run nothing")

    p = sub.add_parser("list", help="the images in the catalog (bplist)")
    common(p)
    p.add_argument("--database")
    p.add_argument("--since", metavar="TIME")
    p.add_argument("--until", metavar="TIME")
    p.add_argument("--type", choices=["D", "T", "d", "t"])
    p.add_argument("--keyword")
    p.add_argument("--limit", type=int, default=1000)

    p = sub.add_parser("verify", help="read and check every block of an image without restoring")
    common(p)
    p.add_argument("backup_id", metavar="BACKUP_ID")

    p = sub.add_parser("jobs", help="the activity monitor")
    common(p)
    p.add_argument("job_id", nargs="?", type=int, metavar="ID")
    p.add_argument("--log", action="store_true", help="with ID: the job's detailed status log")
    p.add_argument("--active", action="store_true")
    p.add_argument("--limit", type=int, default=50)

    p = sub.add_parser("cleanup", help="remove what failed or killed backups left behind")
    common(p)


def main_for(args) -> int:
    try:
        return run(args)
    except StatusError as e:
        if getattr(args, "json", False):
            print(json.dumps({"status": e.status, "message": str(e)}))
        print(f"sybar {args.command}: {e} (status {e.status})", file=sys.stderr)
        return e.status if e.status < 256 else 252
