"""The media server: receives stripe streams and keeps them on storage units.

A role of ``sybar serve`` that runs in its own process (``python -m
engine.media --home DIR --listen HOST:PORT --unit NAME=PATH ...``), so that
the daemon can supervise it and a test can kill it mid-stripe. The Backup
Server's stripe threads reach it through the archive API (engine.archive),
one TCP connection per stripe.

Protocol ``sybar-media-1``
==========================

TCP, TCP_NODELAY, length-prefixed binary frames::

    frame := kind u8 | length u32 big-endian | payload (length bytes)

    kind  'C' challenge  server -> client   "sybar-media-1" + 32-byte random nonce
          'A' auth       client -> server   HMAC-SHA256(secret, nonce + "sybar-media-1"), 32 bytes
          'J' json       both               one UTF-8 JSON object
          'D' data       both               object bytes (about 1 MiB per frame)
          'Z' end        both               end of a byte stream or listing; empty or a JSON object
          'E' error      server -> client   {"ok": false, "status": N, "message": "..."}; then close

No payload is larger than 4 MiB (requests: 64 KiB, the auth frame: 32
bytes); a longer length, an unknown kind or a frame out of place is a
protocol error: the server answers with an error frame, logs it and closes,
without allocating anything for the announced length.

Every connection is authenticated, loopback included. The secret is the 32
bytes of HOME/media.secret (0600, made by ``ensure_media_secret`` on first
start). The server sends the challenge; the client answers with the proof;
the server compares with ``hmac.compare_digest`` and answers
``J {"ok": true, "server": "sybar-media", "protocol": 1}`` or, on failure,
an error frame (status 57) and closes; the refusal is logged with the peer's
address. Then the client sends ONE request (a J frame) per connection:

``{"op": "store", "name": N, "unit": U|null, "job_id": J|null, "expected_bytes": B|null}``
    The server creates the object (temporary name) and answers
    ``J {"ok": true, "ready": true, "name", "unit"}`` or an error (bad name,
    unknown unit, object exists). The client then streams the stripe as D
    frames and one Z frame. Each D frame is fed to a StripeDecoder
    (verify_only) and written to the unit before the next frame is read
    (back-pressure: TCP flow control reaches the client). After Z the stripe
    must be complete (trailer seen, nothing after it); the server commits
    (fsync, rename) and answers ``J {"ok": true, "name", "unit", "bytes",
    "checksum" (xxh3_128 hex of the whole object), "raw_bytes",
    "stripe_digest", "blocks", "dump_id", "stripe", "stripes", "size",
    "mtime"}``. Any failure (damaged or truncated stream, storage error,
    protocol error) -> E frame (84 unless said otherwise), the temporary
    removed, nothing stored; the server then half-closes and drops input
    for a moment so the client reads the error rather than a reset. A client
    that disconnects before Z leaves nothing either.
``{"op": "fetch", "name": N, "unit": U|null}``
    ``J {"ok": true, "name", "unit", "size"}``, then D frames, then
    ``Z {"ok": true, "bytes", "checksum", "blocks", ...}``. Every block is
    verified while it is read and only verified bytes are sent; a damaged
    object ends the stream with an E frame (2850) naming the object, the
    block and the byte offset.
``{"op": "verify", "name": N, "unit": U|null}``
    Reads and checks everything: ``J {"ok": true, "bytes", "checksum",
    "blocks", "raw_bytes", "stripe_digest", ...}`` or E (2850).
``{"op": "remove", "name": N, "unit": U|null}`` -> ``J {"ok": true, "removed": bool, "unit"}``
``{"op": "stat", "name": N, "unit": U|null}`` -> ``J {"ok": true, "object": {name, size, mtime, unit[, locked_until]} | null}``
``{"op": "lock", "name": N, "unit": U|null, "until": T}`` -> ``J {"ok": true, "name", "unit", "locked_until"}``
    WORM-locks a committed object until Unix time T (or extends its lock);
    a shorter lock is refused (88). A locked object cannot be removed or
    overwritten before its unlock time: ``remove`` answers E (88) naming it.
``{"op": "list", "prefix": P, "unit": U|null}``
    J frames ``{"objects": [{name, size, mtime, unit}, ...]}`` (at most 500
    each), then ``Z {"ok": true, "count": N}``.
``{"op": "temporaries", "unit": U|null}``
    J frames ``{"temporaries": [{id, name, size, mtime, in_use, unit}]}``, then Z.
``{"op": "remove_temporary", "unit": U, "id": ID}`` -> ``J {"ok": true, "removed": bool}``

Without "unit", a server with one storage unit uses it; with several,
fetch/verify/stat/remove look in each and list covers all; store needs a unit.

Status codes in error frames are NetBackup's (engine.jobs.status): 57 refused
(authentication), 6 bad request, 84 store failures, 2850 fetch/verify
failures, 41 timeouts, 130 internal errors.
"""

from engine.media.secret import ensure_media_secret, read_media_secret, secret_path
from engine.media.server import MediaLimits, MediaServer, UnitResolver, serve_media

__all__ = [
    "MediaLimits",
    "MediaServer",
    "UnitResolver",
    "ensure_media_secret",
    "read_media_secret",
    "secret_path",
    "serve_media",
]
