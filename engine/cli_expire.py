"""`sybar expire` (NetBackup's bpexpdate and image cleanup) and `sybar catalog check`.

    sybar expire                          remove every image whose expiration has passed
    sybar expire --image ID --now         delete one image now (bpexpdate -d 0)
    sybar expire --image ID --until DATE  change its expiration (on WORM storage: only extend)
    sybar catalog check                   check every seal of the catalog

Like the other commands they go through the daemon's control API; --json
prints one JSON document. Exit status: the NetBackup status (88 a WORM lock
refused it, 220 the catalog fails its seal check, 1 some images were kept
because their storage still holds them locked).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from engine.home import Home
from engine.jobs.status import INVALID_PARAMETER, PARTIAL, StatusError

if TYPE_CHECKING:  # the control client (aiohttp) is imported only when a command runs: `--help` stays quick
    from engine.control.client import ControlClient


def add_parsers(sub, add_home) -> None:
    p = sub.add_parser("expire", help="remove expired images, or change one image's expiration (bpexpdate)")
    add_home(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--image", metavar="BACKUP_ID", help="act on this image only")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--now", action="store_true", help="with --image: delete it now (refused while WORM-locked)")
    what.add_argument("--until", metavar="DATE",
                      help="with --image: its new expiration, 'YYYY-MM-DD[ hh:mm[:ss]]' local time or infinity "
                           "(a WORM image's can only be extended)")

    p = sub.add_parser("catalog", help="the catalog's tamper check")
    add_home(p)
    p.add_argument("action", choices=["check"], help="check: recompute every seal of the catalog")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def main_for(args) -> int:
    import asyncio

    try:
        home = Home.resolve(args.home)
        return asyncio.run(_with_client(home, args))
    except StatusError as e:
        if getattr(args, "json", False):
            print(json.dumps({"status": e.status, "message": str(e)}))
        print(f"sybar {args.command}: {e} (status {e.status})", file=sys.stderr)
        return e.status if e.status < 256 else 252


async def _with_client(home: Home, args) -> int:
    if args.command == "expire" and not args.image and (args.now or args.until):
        raise StatusError(INVALID_PARAMETER, "--now and --until act on one image: name it with --image BACKUP_ID")
    if args.command == "expire" and args.image and not (args.now or args.until):
        raise StatusError(INVALID_PARAMETER, f"say what to do with image {args.image}: --now (delete it) or "
                                             "--until DATE (its new expiration)")
    from engine.control.client import connect_home

    client = await connect_home(home)
    try:
        if args.command == "catalog":
            return await _check(client, args)
        if args.image and args.now:
            return _expired(await client.expire_image(args.image), args)
        if args.image:
            return _changed(await client.set_expiration(args.image, args.until), args)
        return _expired(await client.expire(), args)
    finally:
        await client.close()


def _expired(result: dict, args) -> int:
    refused = result.get("refused") or []
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        expired = result.get("expired") or []
        print(f"sybar expire: {len(expired)} image{'s' if len(expired) != 1 else ''} removed, "
              f"{len(result.get('objects') or [])} backup objects deleted")
        for backup_id in expired:
            print(f"    removed {backup_id}")
        for r in refused:
            print(f"    kept {r.get('backup_id')}: {r.get('reason')}")
    return PARTIAL if refused else 0


def _changed(image: dict, args) -> int:
    if args.json:
        print(json.dumps(image, indent=2, default=str))
    else:
        worm = f"; WORM unlock time {image.get('unlock_time')}" if image.get("worm") else ""
        print(f"sybar expire: image {image.get('backup_id')} now expires {image.get('expiration')}{worm}")
    return 0


async def _check(client: ControlClient, args) -> int:
    result = await client.catalog_check()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        if result.get("ok"):
            print(f"sybar catalog: intact: {result.get('images')} images and {result.get('entries')} seal entries "
                  f"checked in {result.get('seconds', 0):.2f} s")
        else:
            print("sybar catalog: the catalog was changed outside sybar:")
            for p in result.get("problems") or []:
                print(f"    {p}")
    return 0 if result.get("ok") else 220
