"""The media server in-process, through the real archive client and real sockets."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import threading
import time

import pytest
import xxhash
from test_media_kit import (
    SECRET,
    MediaThread,
    digest_tables,
    disk_units,
    make_db,
    objects,
    stripe_bytes,
    stripe_stream,
    temp_files,
    wait_until,
)

from engine.archive import ArchiveSink, ArchiveSource, MediaClient, object_name, parse_object_name
from engine.backupserver import dump_database, load_database, verify_dump
from engine.jobs.status import (
    BACKUP_FAILED,
    CANT_CONNECT,
    CONNECTION_REFUSED,
    MEDIA_WRITE_ERROR,
    NETWORK_TIMEOUT,
    RESTORE_ERROR,
    StatusError,
)
from engine.media import protocol as p
from engine.media.server import MediaLimits
from engine.storage import DiskStorageUnit

WHEN = _dt.datetime(2026, 11, 25, 14, 5, 25)


def name(i: int = 0, db: str = "salesdb", pid: int = 24312) -> str:
    return object_name("SYBAR", db, "D", i, pid, WHEN)


@pytest.fixture
def media(tmp_path):
    m = MediaThread(disk_units(tmp_path, "disk1"))
    m.unit_path = tmp_path / "disk1"
    yield m
    m.close()


@pytest.fixture
def client(media):
    return MediaClient(media.host, media.port, SECRET, timeout=60)


def store(client: MediaClient, obj: str, data: bytes | list[bytes], unit: str | None = "disk1"):
    sink = client.store(obj, unit)
    for part in [data] if isinstance(data, bytes) else data:
        sink.write(part)
    return sink.commit()


def fetch(client: MediaClient, obj: str, n: int = 100_000) -> bytes:
    src = client.fetch(obj)
    parts = []
    try:
        while chunk := src.read(n):
            parts.append(chunk)
    finally:
        src.close()
    return b"".join(parts)


# -- the real thing: a 4-stripe dump of a SQLite database straight to the media server ----


def test_dump_to_media_server_and_load_back(tmp_path, media, client):
    db = make_db(tmp_path / "sales.db", mb=6)
    names = [name(i) for i in range(4)]
    sinks = client.store_all(names, "disk1", job_id=42)
    assert all(isinstance(s, ArchiveSink) for s in sinks)
    result = dump_database(server="SYBAR", database="salesdb", db_path=db, sinks=sinks, compression=1)
    assert result.stripes == 4
    stored = [s.result for s in sinks]
    assert all(r is not None for r in stored)
    assert objects(media.unit_path) == sorted(names)
    assert temp_files(media.unit_path) == []
    for r, per in zip(stored, sorted(result.per_stripe, key=lambda x: x.stripe), strict=True):
        assert r.bytes == per.stored_bytes
        assert r.stripe_digest == per.digest and r.raw_bytes == per.raw_bytes
        assert r.dump_id == result.dump_id and r.stripes == 4
        on_disk = (media.unit_path / r.name).read_bytes()
        assert xxhash.xxh3_128_hexdigest(on_disk) == r.checksum and len(on_disk) == r.bytes
        v = client.verify(r.name)
        assert v["checksum"] == r.checksum and v["bytes"] == r.bytes and v["blocks"] == r.blocks
    # every stripe is named as NetBackup names them; they belong to one dump
    parsed = [parse_object_name(n) for n in names]
    assert all(x.same_dump(parsed[0]) for x in parsed)

    sources = [client.fetch(n) for n in reversed(names)]  # any order: load sorts them by header
    assert all(isinstance(s, ArchiveSource) for s in sources)
    out = tmp_path / "loaded.db"
    loaded = load_database(sources=sources, target_tmp=out, expect_database="salesdb")
    assert loaded.digest == result.digest
    assert digest_tables(out) == digest_tables(db)
    assert verify_dump([client.fetch(n) for n in names]).digest == result.digest


def test_a_failed_dump_leaves_no_object(tmp_path, media, client):
    """A dump that fails after some stripes committed aborts them all: the media server removes them."""
    db = make_db(tmp_path / "sales.db", mb=2)
    sinks = client.store_all([name(i) for i in range(3)], "disk1")

    class Boom(Exception):
        pass

    def failing_commit():
        wait_until(lambda: all(s.result for s in sinks[:2]), what="two stripes committed")
        raise Boom("stripe 2 cannot commit")

    sinks[2].commit = failing_commit
    with pytest.raises(Boom):
        dump_database(server="SYBAR", database="salesdb", db_path=db, sinks=sinks, compression=None)
    wait_until(
        lambda: objects(media.unit_path) == [] and temp_files(media.unit_path) == [], what="nothing left"
    )


# -- authentication ---------------------------------------------------------------------------


def test_wrong_secret_is_refused_and_logged(media, caplog):
    caplog.set_level(logging.INFO, logger="sybar.media")
    bad = MediaClient(media.host, media.port, os.urandom(32), timeout=10)
    for call in (lambda: bad.stat(name()), lambda: bad.store(name(), "disk1"), lambda: bad.fetch(name())):
        with pytest.raises(StatusError) as ei:
            call()
        assert ei.value.status == CONNECTION_REFUSED
        assert "authentication failed" in str(ei.value)
        assert SECRET.hex() not in str(ei.value)
    assert objects(media.unit_path) == [] and temp_files(media.unit_path) == []
    assert "authentication failed" in caplog.text and "refused a connection from 127.0.0.1" in caplog.text
    # the server is fine
    good = MediaClient(media.host, media.port, SECRET)
    assert good.stat(name()) is None


def test_secret_never_in_repr_or_logs(media, caplog):
    caplog.set_level(logging.DEBUG)
    c = MediaClient(media.host, media.port, SECRET)
    store(c, name(), stripe_bytes(0.5))
    for text in (repr(c), repr(media.media), caplog.text):
        assert SECRET.hex() not in text and repr(SECRET) not in text


def raw_connect(media) -> socket.socket:
    s = socket.create_connection((media.host, media.port), timeout=10)
    return s


def read_frame(s: socket.socket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 5:
        chunk = s.recv(5 - len(head))
        if not chunk:
            return -1, b""
        head += chunk
    kind, n = p.FRAME_HEADER.unpack(head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return kind, body


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00" * 1000,
        os.urandom(4096),
        p.FRAME_HEADER.pack(p.AUTH, 0xFFFFFFFF),  # a hostile length: refused before any allocation
        p.FRAME_HEADER.pack(p.AUTH, 31) + b"x" * 31,
        p.FRAME_HEADER.pack(p.JSON, 2) + b"{}",  # a request before authenticating
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS client hello
    ],
)
def test_garbage_on_the_port_is_refused_without_harm(media, garbage, caplog):
    caplog.set_level(logging.INFO, logger="sybar.media")
    s = raw_connect(media)
    kind, challenge = read_frame(s)
    assert kind == p.CHALLENGE and challenge.startswith(b"sybar-media-1")
    s.sendall(garbage)
    kind, body = read_frame(s)
    assert kind == p.ERROR
    err = p.decode_json(body)
    assert err["ok"] is False and err["status"] == CONNECTION_REFUSED
    assert read_until_closed(s) == b""
    s.close()
    assert "refused a connection from 127.0.0.1" in caplog.text
    assert media.thread.is_alive()
    assert MediaClient(media.host, media.port, SECRET).stat(name()) is None


def test_garbage_after_authentication(media):
    for payload in (
        p.FRAME_HEADER.pack(p.DATA, 3) + b"abc",  # data instead of a request
        p.frame(p.JSON, b"[1,2]"),  # not an object
        p.frame(p.JSON, b'{"op": "format c:"}'),
        p.FRAME_HEADER.pack(p.JSON, p.MAX_REQUEST + 1),
    ):
        s = raw_connect(media)
        _, challenge = read_frame(s)
        s.sendall(p.frame(p.AUTH, p.auth_proof(SECRET, p.parse_challenge(challenge))))
        kind, body = read_frame(s)
        assert kind == p.JSON and p.decode_json(body)["ok"] is True
        s.sendall(payload)
        kind, body = read_frame(s)
        assert kind == p.ERROR, body
        assert read_until_closed(s) == b""
        s.close()
    assert MediaClient(media.host, media.port, SECRET).stat(name()) is None


def test_silent_client_is_dropped(tmp_path):
    m = MediaThread(disk_units(tmp_path, "disk1"), limits=MediaLimits(auth_timeout=0.5))
    try:
        s = socket.create_connection((m.host, m.port), timeout=10)
        kind, _ = read_frame(s)
        assert kind == p.CHALLENGE
        t0 = time.monotonic()
        kind, body = read_frame(s)
        assert kind == p.ERROR and "no authentication" in p.decode_json(body)["message"]
        assert time.monotonic() - t0 < 5
        s.close()
    finally:
        m.close()


# -- refused streams --------------------------------------------------------------------------


def corrupt(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x40
    return bytes(b)


@pytest.mark.parametrize("where", ["header", "block", "trailer"])
def test_corrupted_stream_is_refused_and_nothing_stored(media, client, where):
    data = stripe_bytes(3)
    at = {"header": 20, "block": len(data) // 2, "trailer": len(data) - 30}[where]
    sink = client.store(name(), "disk1")
    with pytest.raises(StatusError) as ei:
        for i in range(0, len(data), 256 << 10):
            sink.write(corrupt(data, at)[i : i + (256 << 10)])
        sink.commit()
    e = ei.value
    assert e.status == MEDIA_WRITE_ERROR
    assert f"refused object {name()}" in str(e) and "nothing was stored" in str(e)
    sink.abort()
    wait_until(lambda: temp_files(media.unit_path) == [], what="temporary removed")
    assert objects(media.unit_path) == []
    assert client.stat(name()) is None


def test_truncated_stream_is_refused(media, client):
    data = stripe_bytes(2)
    sink = client.store(name(), "disk1")
    sink.write(data[: len(data) - 100])
    with pytest.raises(StatusError) as ei:
        sink.commit()
    assert ei.value.status == MEDIA_WRITE_ERROR and "truncated" in str(ei.value)
    wait_until(lambda: temp_files(media.unit_path) == [], what="temporary removed")
    assert objects(media.unit_path) == []


def test_trailing_garbage_is_refused(media, client):
    sink = client.store(name(), "disk1")
    sink.write(stripe_bytes(1) + b"extra")
    with pytest.raises(StatusError, match="trailing garbage"):
        sink.commit()
    assert objects(media.unit_path) == []


def test_client_that_disconnects_mid_stream_leaves_nothing(media, client, caplog):
    caplog.set_level(logging.INFO, logger="sybar.media")
    stream = stripe_stream(5)
    sink = client.store(name(), "disk1")
    for _ in range(3):
        sink.write(next(stream))
    wait_until(lambda: len(temp_files(media.unit_path)) == 1, what="temporary created")
    sink.abort()
    wait_until(lambda: temp_files(media.unit_path) == [], what="temporary removed")
    assert objects(media.unit_path) == []
    wait_until(lambda: "the object was discarded" in caplog.text, what="log line")
    # a second abort and a write after abort
    sink.abort()
    with pytest.raises(StatusError):
        sink.write(b"x")


def test_bad_requests_fail_before_streaming(media, client):
    with pytest.raises(StatusError) as ei:
        client.store(name(), "nosuchunit")
    assert ei.value.status == BACKUP_FAILED and "no storage unit named nosuchunit" in str(ei.value)
    with pytest.raises(StatusError) as ei:
        ArchiveSink(client, "../../etc/passwd", "disk1")
    assert ei.value.status == BACKUP_FAILED
    # a name the client would refuse, sent raw: the server checks it too
    s = raw_connect(media)
    _, challenge = read_frame(s)
    s.sendall(p.frame(p.AUTH, p.auth_proof(SECRET, p.parse_challenge(challenge))))
    read_frame(s)
    s.sendall(p.json_frame({"op": "store", "name": "x/../../y", "unit": "disk1"}))
    kind, body = read_frame(s)
    assert kind == p.ERROR and "only letters, digits" in p.decode_json(body)["message"]
    s.close()
    store(client, name(), stripe_bytes(0.2))
    with pytest.raises(StatusError) as ei:
        client.store(name(), "disk1")
    assert ei.value.status == MEDIA_WRITE_ERROR and "already holds an object" in str(ei.value)


# -- reading back -----------------------------------------------------------------------------


def test_fetch_returns_the_bytes_and_summary(media, client):
    data = stripe_bytes(4)
    r = store(client, name(), [data[i : i + 70_000] for i in range(0, len(data), 70_000)])
    assert r.bytes == len(data) and r.checksum == xxhash.xxh3_128_hexdigest(data)
    src = client.fetch(name())
    assert src.size == len(data)
    got = b""
    while chunk := src.read(1 << 20):
        got += chunk
    assert got == data
    assert src.summary["checksum"] == r.checksum and src.summary["bytes"] == len(data)
    assert src.read(10) == b""
    src.close()


def test_fetch_of_a_corrupted_object_names_the_block(media, client):
    data = stripe_bytes(5)
    store(client, name(), data)
    path = media.unit_path / name()
    # flip a byte in the middle of block 2
    header_len = data.index(b"SBLK")
    block_len = 48 + (1 << 20)  # block header + 1 MiB of pages
    at = header_len + 2 * block_len + 5000
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 1]))
    src = client.fetch(name())
    got = 0
    with pytest.raises(StatusError) as ei:
        while chunk := src.read(65536):
            got += len(chunk)
    e = ei.value
    assert e.status == RESTORE_ERROR
    assert f"object {name()} on storage unit disk1" in str(e)
    assert "block 2" in str(e) and "damaged" in str(e)
    assert got < at  # no byte of the damaged block was handed out
    src.close()
    with pytest.raises(StatusError, match="block 2") as ei:
        client.verify(name())
    assert ei.value.status == RESTORE_ERROR


def test_fetch_and_verify_of_a_missing_object(media, client):
    for call in (client.fetch, client.verify):
        with pytest.raises(StatusError) as ei:
            call(name(9))
        assert ei.value.status == RESTORE_ERROR and f"no object named {name(9)}" in str(ei.value)


def test_list_stat_remove(media, client):
    names = [name(i, db="db1") for i in range(3)] + [name(0, db="db2")]
    for n in names:
        store(client, n, stripe_bytes(0.1))
    listed = sorted(client.list("SYBAR.db1."), key=lambda o: o.name)
    assert [o.name for o in listed] == names[:3]
    assert all(o.unit == "disk1" and o.size > 0 for o in listed)
    assert len(list(client.list())) == 4
    st = client.stat(names[3])
    assert st is not None and st.name == names[3] and st.size == (media.unit_path / names[3]).stat().st_size
    assert client.remove(names[3]) is True
    assert client.remove(names[3]) is False
    assert client.stat(names[3]) is None
    with pytest.raises(StatusError):
        list(client.list("../"))


def test_abort_after_commit_removes_the_object(media, client):
    sink = client.store(name(), "disk1")
    sink.write(stripe_bytes(0.5))
    sink.commit()
    assert objects(media.unit_path) == [name()]
    sink.abort()
    assert objects(media.unit_path) == []


def test_many_listed_objects_stream_in_batches(media, client):
    media.unit_path.mkdir()
    for i in range(1200):
        (media.unit_path / f"OBJ.{i:05d}").write_bytes(b"x")
    got = [o.name for o in client.list("OBJ.")]
    assert sorted(got) == [f"OBJ.{i:05d}" for i in range(1200)]


def test_several_units(tmp_path):
    m = MediaThread(disk_units(tmp_path, "a", "b"))
    try:
        c = MediaClient(m.host, m.port, SECRET)
        with pytest.raises(StatusError, match="name the one to use"):
            c.store(name(), None)
        store(c, name(0), stripe_bytes(0.1), unit="a")
        store(c, name(1), stripe_bytes(0.1), unit="b")
        assert {o.unit for o in c.list()} == {"a", "b"}
        assert c.stat(name(1)).unit == "b"
        assert c.verify(name(1))["unit"] == "b"
        assert len(fetch(c, name(0))) > 0
        assert c.remove(name(1)) is True and objects(tmp_path / "b") == []
    finally:
        m.close()


def test_cleanup_requests(media, client):
    sink = client.store(name(), "disk1")
    sink.write(next(stripe_stream(1)))
    wait_until(lambda: len(temp_files(media.unit_path)) == 1, what="temporary")
    temps = client.temporaries()
    assert len(temps) == 1 and temps[0].in_use and temps[0].name == name()
    assert client.remove_temporary(temps[0]) is False  # still being written
    sink.abort()
    wait_until(lambda: temp_files(media.unit_path) == [], what="temporary removed")
    with pytest.raises(StatusError, match="not the id of a temporary"):
        client.remove_temporary("../../x", "disk1")


# -- concurrency ------------------------------------------------------------------------------


def test_32_concurrent_stores(media, client):
    datas = [stripe_bytes(1.5) for _ in range(4)]
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def worker(i: int):
        try:
            sink = client.store(name(i, pid=7), "disk1", job_id=i)
            barrier.wait()
            data = datas[i % 4]
            for k in range(0, len(data), 300_000):
                sink.write(data[k : k + 300_000])
            results[i] = sink.commit()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 32
    for i, r in results.items():
        assert r.checksum == xxhash.xxh3_128_hexdigest(datas[i % 4])
    assert len(objects(media.unit_path)) == 32 and temp_files(media.unit_path) == []

    fetched: dict[int, bytes] = {}

    def reader(i: int):
        try:
            fetched[i] = fetch(client, name(i, pid=7), 1 << 20)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(fetched[i] == datas[i % 4] for i in range(32))


# -- connection failures ----------------------------------------------------------------------


def test_nothing_listening_is_cant_connect():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = MediaClient("127.0.0.1", port, SECRET, timeout=5)
    for call in (lambda: c.store(name(), "disk1"), lambda: c.fetch(name()), lambda: c.stat(name())):
        with pytest.raises(StatusError) as ei:
            call()
        assert ei.value.status == CANT_CONNECT
        assert str(ei.value).startswith(f"can't connect to the media server at 127.0.0.1:{port}: ")


def test_a_server_that_says_nothing_times_out():
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen()
    try:
        c = MediaClient("127.0.0.1", lsn.getsockname()[1], SECRET, timeout=0.5, connect_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(StatusError) as ei:
            c.store(name(), "disk1")
        assert ei.value.status == NETWORK_TIMEOUT and "did not answer within 0.5 s" in str(ei.value)
        assert time.monotonic() - t0 < 5
    finally:
        lsn.close()


def test_a_port_that_is_not_a_media_server(tmp_path):
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen()

    def answer():
        conn, _ = lsn.accept()
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        conn.close()

    t = threading.Thread(target=answer)
    t.start()
    try:
        c = MediaClient("127.0.0.1", lsn.getsockname()[1], SECRET, timeout=5)
        with pytest.raises(StatusError) as ei:
            c.stat(name())
        assert ei.value.status == CANT_CONNECT and "does not speak the sybar media protocol" in str(ei.value)
    finally:
        t.join()
        lsn.close()


def test_server_close_aborts_stores_in_progress(tmp_path):
    m = MediaThread(disk_units(tmp_path, "disk1"))
    c = MediaClient(m.host, m.port, SECRET, timeout=10)
    sink = c.store(name(), "disk1")
    stream = stripe_stream(5)
    sink.write(next(stream))
    sink.write(next(stream))
    wait_until(lambda: len(temp_files(tmp_path / "disk1")) == 1, what="temporary")
    m.close()
    assert temp_files(tmp_path / "disk1") == [] and objects(tmp_path / "disk1") == []
    with pytest.raises(StatusError) as ei:
        for part in stream:
            sink.write(part)
        sink.commit()
    assert ei.value.status == MEDIA_WRITE_ERROR and name() in str(ei.value)


def test_storage_error_reaches_the_client(tmp_path):
    import errno

    from engine.storage import DiskObjectWriter

    class Full(DiskObjectWriter):
        def _write_some(self, fd, data):
            if self.written > (2 << 20):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super()._write_some(fd, data)

    unit = type("U", (DiskStorageUnit,), {"writer_class": Full})("disk1", tmp_path / "disk1")
    m = MediaThread({"disk1": unit})
    try:
        c = MediaClient(m.host, m.port, SECRET, timeout=10)
        sink = c.store(name(), "disk1")
        with pytest.raises(StatusError) as ei:
            for part in stripe_stream(8):
                sink.write(part)
            sink.commit()
        e = ei.value
        assert e.status == MEDIA_WRITE_ERROR
        assert "No space left on device (ENOSPC)" in str(e) and "storage unit disk1" in str(e)
        sink.abort()
        assert temp_files(tmp_path / "disk1") == [] and objects(tmp_path / "disk1") == []
    finally:
        m.close()


def test_serve_media_function(tmp_path):
    import asyncio

    from engine.media import serve_media

    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        units = {"disk1": DiskStorageUnit("disk1", tmp_path / "disk1")}

        async def start():
            return await serve_media(units, SECRET, "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        port = server.sockets[0].getsockname()[1]
        c = MediaClient("127.0.0.1", port, SECRET)
        r = store(c, name(), stripe_bytes(1))
        assert c.verify(name())["checksum"] == r.checksum
        asyncio.run_coroutine_threadsafe(server.media.close(), loop).result(30)
        with pytest.raises(StatusError) as ei:
            c.stat(name())
        assert ei.value.status == CANT_CONNECT
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()
