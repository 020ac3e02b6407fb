"""The control API: HTTP/JSON over aiohttp, job events as server-sent events.

One API for the CLI and the GUI (DESIGN.md §2). Version prefix /api/v1.

  GET  /api/v1/status                         roles, addresses, versions
  POST /api/v1/backups        {scripts, policy?, schedule?, keyword?}  -> {jobs: [id]}
  POST /api/v1/restores       {script} | {backup_id, database?, until?} -> {job: id}
                              {backup_id, database?, until?, plan_only: true} -> {plan, statements, images}
  GET  /api/v1/images         ?database&client&since&until&type&keyword&policy&limit&offset
  GET  /api/v1/images/{backup_id}
  GET  /api/v1/databases/{database}/spans ?dataserver  restorable spans, oldest full dump first
  POST /api/v1/images/{backup_id}/verify                               -> {job: id}
  GET  /api/v1/jobs           ?active&parent&limit
  GET  /api/v1/jobs/{id}      the job, its children
  GET  /api/v1/jobs/{id}/log
  POST /api/v1/jobs/{id}/cancel                                        -> {cancelled: bool}
  POST /api/v1/cleanup                                                 -> what was removed
  POST /api/v1/expire                         remove expired images     -> {expired, refused, objects}
  POST /api/v1/images/{backup_id}/expire      delete one image now      -> {expired, objects}
  POST /api/v1/images/{backup_id}/expiration  {until}                   -> the image (WORM: only later)
  GET  /api/v1/catalog/check                  the catalog's seal check  -> {ok, problems, images, entries}
  GET  /api/v1/events         ?job=ID   text/event-stream, one JSON event per message

Every request needs ``Authorization: Bearer TOKEN`` (HOME/control.token).
Off loopback the API is HTTPS only (engine/tls.py; control.json says so).
Errors answer ``{"status": NetBackup code, "message": sentence}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from engine.control.auth import token_matches
from engine.jobs.status import StatusError

log = logging.getLogger(__name__)

API = "/api/v1"
HEARTBEAT_S = 15.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _http_status(status: int) -> int:
    """The HTTP status that goes with a NetBackup one: not found, conflict, bad request, or our fault."""
    if status in (71, 227):          # none of the files exist / no entity was found
        return 404
    if status == 150:                # termination requested
        return 409
    if status == 20:                 # invalid command parameter: the request itself is wrong
        return 400
    return 500 if status in (130, 174) else 422


def make_app(ops, token: str) -> web.Application:
    """ops: the daemon's operations (see engine/daemon.py)."""

    @web.middleware
    async def guard(request: web.Request, handler):
        if not token_matches(request.headers.get("Authorization"), token):
            log.warning("control API: refused an unauthenticated request from %s", request.remote)
            return _json({"status": 58, "message": "not authenticated: send the home's control token"}, 401)
        try:
            return await handler(request)
        except StatusError as e:
            return _json({"status": e.status, "message": str(e)}, _http_status(e.status))
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            return _json({"status": 20, "message": f"bad request: {e}"}, 400)

    async def body(request: web.Request) -> dict:
        if not request.can_read_body:
            return {}
        try:
            data = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise StatusError(20, "the request body is not JSON: send one JSON object "
                                  "(Content-Type: application/json)") from None
        if not isinstance(data, dict):
            raise StatusError(20, "the request body must be a JSON object, for example {\"scripts\": [...]}")
        return data

    async def status(request):
        return _json(ops.status())

    async def backups(request):
        b = await body(request)
        scripts = b.get("scripts") or []
        if not isinstance(scripts, list) or not scripts:
            raise ValueError("scripts: give a list of script paths")
        jobs = await ops.start_backup([str(s) for s in scripts], policy=b.get("policy"),
                                      schedule=b.get("schedule"), keyword=b.get("keyword"))
        return _json({"jobs": jobs}, 202)

    async def restores(request):
        b = await body(request)
        if b.get("script"):
            job = await ops.start_restore_script(str(b["script"]))
        elif b.get("backup_id") and b.get("plan_only"):
            return _json(await ops.plan_restore(str(b["backup_id"]), database=b.get("database"),
                                                until=b.get("until")))
        elif b.get("backup_id"):
            job = await ops.start_restore_image(str(b["backup_id"]), database=b.get("database"),
                                                until=b.get("until"))
        else:
            raise ValueError("give a script, or a backup_id")
        return _json({"job": job}, 202)

    def filters(q) -> dict:
        out = {}
        for key in ("database", "client", "dataserver", "keyword", "policy"):
            if q.get(key):
                out[key] = q[key]
        if q.get("type"):
            out["dump_type"] = q["type"].upper()
        for key in ("since", "until"):
            if q.get(key):
                out[key] = float(q[key])
        for key in ("limit", "offset"):
            if q.get(key):
                out[key] = int(q[key])
        if q.get("order"):
            if q["order"] not in ("newest", "oldest"):
                raise ValueError("order: give newest or oldest")
            out["newest_first"] = q["order"] == "newest"
        return out

    async def images(request):
        return _json(await ops.list_images(**filters(request.query)))

    async def image_chain(request):
        limit = int(request.query.get("limit", 200))
        return _json(await ops.image_chain(request.match_info["backup_id"], limit=max(1, min(limit, 5000))))

    async def image_count(request):
        f = {k: v for k, v in filters(request.query).items() if k not in ("limit", "offset", "newest_first")}
        return _json({"count": await ops.count_images(**f)})

    async def facets(request):
        return _json(await ops.catalog_facets())

    async def image(request):
        return _json(await ops.get_image(request.match_info["backup_id"]))

    async def spans(request):
        return _json(await ops.spans(request.match_info["database"], dataserver=request.query.get("dataserver")))

    async def verify(request):
        job = await ops.start_verify(request.match_info["backup_id"])
        return _json({"job": job}, 202)

    async def jobs(request):
        q = request.query
        return _json(await ops.list_jobs(active_only=q.get("active") in ("1", "true"),
                                         parent_id=int(q["parent"]) if q.get("parent") else None,
                                         limit=int(q.get("limit", 100))))

    async def job(request):
        return _json(await ops.get_job(int(request.match_info["job_id"])))

    async def job_log(request):
        return _json(await ops.job_log(int(request.match_info["job_id"])))

    async def cancel(request):
        return _json({"cancelled": await ops.cancel_job(int(request.match_info["job_id"]))})

    async def cleanup(request):
        return _json(await ops.cleanup())

    async def expire(request):
        return _json(await ops.expire_due())

    async def expire_image(request):
        return _json(await ops.expire_image(request.match_info["backup_id"]))

    async def expiration(request):
        b = await body(request)
        if b.get("until") in (None, ""):
            raise ValueError("until: give the new expiration")
        return _json(await ops.set_expiration(request.match_info["backup_id"], b["until"]))

    async def catalog_check(request):
        return _json(await ops.catalog_check())

    async def events(request):
        job_id = int(request.query["job"]) if request.query.get("job") else None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        sub = ops.bus.subscribe(job_id=job_id)
        await resp.write(b'data: {"event": "connected"}\n\n')  # the subscription is live from here
        streams.add(asyncio.current_task())
        try:
            while True:
                try:
                    event = await asyncio.wait_for(sub.__anext__(), HEARTBEAT_S)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                except StopAsyncIteration:
                    break
                data = json.dumps(event.to_json() if hasattr(event, "to_json") else event, default=str)
                await resp.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            streams.discard(asyncio.current_task())
            sub.close()
        return resp

    streams: set[asyncio.Task] = set()   # event streams in progress

    async def end_streams(app) -> None:
        """On stop, end the event streams at once (a gone client is noticed only at the next heartbeat)."""
        for task in list(streams):
            task.cancel()

    app = web.Application(middlewares=[guard])
    app.on_shutdown.append(end_streams)
    app.add_routes([
        web.get(f"{API}/status", status),
        web.post(f"{API}/backups", backups),
        web.post(f"{API}/restores", restores),
        web.get(f"{API}/images", images),
        web.get(f"{API}/images/{{backup_id}}", image),
        web.get(f"{API}/images/{{backup_id}}/chain", image_chain),
        web.get(f"{API}/catalog/count", image_count),
        web.get(f"{API}/catalog/facets", facets),
        web.post(f"{API}/images/{{backup_id}}/verify", verify),
        web.get(f"{API}/databases/{{database}}/spans", spans),
        web.get(f"{API}/jobs", jobs),
        web.get(f"{API}/jobs/{{job_id}}", job),
        web.get(f"{API}/jobs/{{job_id}}/log", job_log),
        web.post(f"{API}/jobs/{{job_id}}/cancel", cancel),
        web.post(f"{API}/cleanup", cleanup),
        web.post(f"{API}/expire", expire),
        web.post(f"{API}/images/{{backup_id}}/expire", expire_image),
        web.post(f"{API}/images/{{backup_id}}/expiration", expiration),
        web.get(f"{API}/catalog/check", catalog_check),
        web.get(f"{API}/events", events),
    ])
    return app


async def serve_control(ops, token: str, host: str, port: int,
                        ssl_context=None) -> tuple[web.AppRunner, tuple[str, int]]:
    """Listen on host:port; with ssl_context (the daemon gives one off loopback), HTTPS only."""
    runner = web.AppRunner(make_app(ops, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    addr = site._server.sockets[0].getsockname()  # the real port when 0 was asked
    return runner, (addr[0], addr[1])
