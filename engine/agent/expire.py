"""Image expiration: NetBackup's ``bpexpdate`` and image cleanup, with WORM.

- ``expire_due``: every complete image whose expiration has passed goes, its
  objects from the storage units first, then its catalog record (``sybar
  expire``). An image a storage unit still holds WORM-locked is refused and
  reported, never half removed.
- ``expire_now``: one image, now (``sybar expire --image ID --now``, bpexpdate
  ``-d 0``); refused for a WORM image before its unlock time.
- ``set_expiration``: one image's expiration (``--until DATE``); on WORM
  storage only later (the storage unit's locks are extended first, then the
  catalog's record, which is sealed again).

Nothing is removed or changed while the catalog fails its seal check, or for
an image whose record fails it (StatusError 220): a record edited outside
sybar (an expiration shortened with the sqlite3 shell) never deletes a backup.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from engine.catalog.catalog import INFINITE_EXPIRATION, Image, iso_local, worm_locked
from engine.jobs.status import INVALID_PARAMETER, NO_ENTITY, WORM_LOCK_ERROR, StatusError

if TYPE_CHECKING:
    from engine.agent.sybackup import ArchiveAgent

log = logging.getLogger(__name__)


def lock_object(media: Any, name: str, unit: str | None, until: float) -> float:
    """WORM-lock (or extend the lock of) one object through the media server."""
    reply = media._one(
        f"WORM-locking object {name}",
        WORM_LOCK_ERROR,
        {"op": "lock", "name": name, "unit": unit, "until": min(float(until), INFINITE_EXPIRATION)},
    )
    return float(reply.get("locked_until", until))


def parse_until(value: Any) -> float:
    """A new expiration: Unix seconds, ``infinity``, or local ``YYYY-MM-DD[ hh:mm[:ss]]``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isnan(value):
            raise StatusError(INVALID_PARAMETER, "the new expiration is not a number")
        return min(float(value), INFINITE_EXPIRATION)
    text = str(value or "").strip()
    if text.lower() in ("infinity", "infinite", "never"):
        return INFINITE_EXPIRATION
    try:
        return min(float(text), INFINITE_EXPIRATION)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    raise StatusError(
        INVALID_PARAMETER,
        f"{text!r} is not an expiration date: give YYYY-MM-DD[ hh:mm[:ss]] (local time) or infinity",
    )


class Expirer:
    def __init__(self, agent: ArchiveAgent):
        self.agent = agent
        self.daemon = agent.daemon

    @property
    def catalog(self):
        return self.daemon.catalog

    def _image(self, backup_id: str) -> Image:
        image = self.catalog.get_image(backup_id)
        if image is None:
            raise StatusError(NO_ENTITY, f"no image {backup_id} in the catalog: `sybar list` shows the images")
        return image

    async def _media(self):
        await self.daemon.media.ensure_running()
        return self.agent._media()

    async def _storage_locks(self, media: Any, image: Image, now: float) -> list[tuple[str, str, float]]:
        """(object, unit, unlock time) of the image's objects a storage unit holds locked now."""
        out = []
        for o in sorted(image.objects, key=lambda o: o.stripe):
            info = await asyncio.to_thread(media.stat, o.name, o.storage_unit)
            if info is not None and info.locked_until is not None and info.locked_until > now:
                out.append((o.name, info.unit or o.storage_unit or "?", info.locked_until))
        return out

    async def _remove(self, media: Any, image: Image) -> list[str]:
        removed = []
        for o in sorted(image.objects, key=lambda o: o.stripe):
            if await asyncio.to_thread(media.remove, o.name, o.storage_unit):
                removed.append(o.name)
        await asyncio.to_thread(self.catalog.remove_image, image.backup_id)
        log.info("expired image %s: %d objects removed", image.backup_id, len(removed))
        return removed

    async def expire_due(self) -> dict[str, Any]:
        """Remove every image whose expiration has passed (see the module doc)."""
        catalog = self.catalog
        catalog.require_intact("expire images")
        now = time.time()
        due = await asyncio.to_thread(catalog.expired_images, now)
        # the catalog's word is checked before anything goes: one bad record and nothing is removed
        await asyncio.to_thread(catalog.check_images, [i.backup_id for i in due], "expire images")
        expired: list[str] = []
        refused: list[dict[str, Any]] = []
        objects: list[str] = []
        media = await self._media() if due else None
        for image in due:
            if image.unlock_time is not None and image.unlock_time > now:
                refused.append({
                    "backup_id": image.backup_id, "unlock_time": iso_local(image.unlock_time),
                    "unlock_time_unix": image.unlock_time,
                    "reason": f"image {image.backup_id} is WORM-locked until {iso_local(image.unlock_time)}",
                })  # fmt: skip
                continue
            locked = await self._storage_locks(media, image, now)
            if locked:
                name, unit, until = max(locked, key=lambda x: x[2])
                refused.append({
                    "backup_id": image.backup_id, "unlock_time": iso_local(until), "unlock_time_unix": until,
                    "reason": f"storage unit {unit} holds object {name} of image {image.backup_id} WORM-locked "
                              f"until {iso_local(until)}, later than the catalog says: nothing of it was removed",
                })  # fmt: skip
                log.warning("expire: %s", refused[-1]["reason"])
                continue
            objects += await self._remove(media, image)
            expired.append(image.backup_id)
        return {"expired": expired, "refused": refused, "objects": objects, "due": len(due), "time": now}

    async def expire_now(self, backup_id: str) -> dict[str, Any]:
        """Delete one image now (refused for a WORM image before its unlock time)."""
        catalog = self.catalog
        doing = f"delete image {backup_id}"
        catalog.require_intact(doing)
        image = await asyncio.to_thread(self._image, backup_id)
        await asyncio.to_thread(catalog.check_images, [backup_id], doing)
        now = time.time()
        if image.unlock_time is not None and image.unlock_time > now:
            raise worm_locked(backup_id, image.unlock_time, "deleted")
        media = await self._media()
        locked = await self._storage_locks(media, image, now)
        if locked:
            name, unit, until = max(locked, key=lambda x: x[2])
            raise StatusError(
                WORM_LOCK_ERROR,
                f"Image {backup_id} cannot be deleted: storage unit {unit} holds its object {name} WORM-locked "
                f"until {iso_local(until)}. Nothing of it was deleted.",
            )
        removed = await self._remove(media, image)
        return {"expired": [backup_id], "refused": [], "objects": removed, "due": 1, "time": now}

    async def set_expiration(self, backup_id: str, until: Any) -> dict[str, Any]:
        """Change one image's expiration; a WORM image's only ever later."""
        catalog = self.catalog
        new = parse_until(until)
        doing = f"change the expiration of image {backup_id}"
        catalog.require_intact(doing)
        image = await asyncio.to_thread(self._image, backup_id)
        await asyncio.to_thread(catalog.check_images, [backup_id], doing)
        if image.unlock_time is not None:
            if image.expiration is not None and new < image.expiration:
                raise StatusError(
                    WORM_LOCK_ERROR,
                    f"Image {backup_id} is on WORM storage: its expiration {iso_local(image.expiration)} can "
                    f"only be extended, not shortened to {iso_local(new)}.",
                )
            media = await self._media()
            for o in sorted(image.objects, key=lambda o: o.stripe):  # the storage's locks first
                await asyncio.to_thread(lock_object, media, o.name, o.storage_unit, max(new, o.unlock_time or 0))
        updated = await asyncio.to_thread(catalog.set_expiration, backup_id, new)
        log.info("image %s: expiration set to %s", backup_id, iso_local(new))
        return updated.to_json()

    async def check(self) -> dict[str, Any]:
        """The catalog's deep seal check, and what the checks since the daemon started found."""
        catalog = self.catalog
        result = await asyncio.to_thread(catalog.deep_check)
        result["problems"] = list(catalog.seal_problems)
        result["ok"] = not catalog.seal_problems
        result["open_check_s"] = catalog.seal_stats.get("open_check_s")
        return result
