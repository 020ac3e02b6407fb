"""sybar as a desktop app: build the bundle (tools/package), then use it with no Python around.

The tarball is unpacked outside the source tree and is alone on PATH (plus /usr/bin:/bin): no
virtualenv, no PYTHONPATH. With it: a demo home, `sybar serve` (whose media server must be the
bundle's own executable), a backup through a Sybase script ($ISQL = the bundle's sybar-isql), the
image in `sybar list`, a restore into another database with the same rows, and an offscreen
screenshot of the window. The desktop entry and metainfo pass their validators; the .deb holds the
same bundle under /opt/sybar.

Run it alone: tools/test tests/packaging (reuses dist/ when it is newer than every source file).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from sybar_testkit import REPO, SA_PASSWORD, table_digest

from engine import __version__

APP = "io.github.sybar.Sybar"
DIST = REPO / "dist"
TARBALL = DIST / f"sybar-{__version__}-linux-x86_64.tar.gz"
DEB = DIST / f"sybar_{__version__}_amd64.deb"
SOURCES = ("engine", "gui", "resources", "packaging", "pyproject.toml", "tools/package", "tools/setup")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        root = REPO / name
        paths = [root] if root.is_file() else (p for p in root.rglob("*") if "__pycache__" not in p.parts)
        for p in paths:
            if p.is_file():
                newest = max(newest, p.stat().st_mtime)
    return newest


@pytest.fixture(scope="module")
def artifacts():
    built = [DIST / "sybar" / "sybar", TARBALL, DEB]
    if all(p.exists() for p in built) and min(p.stat().st_mtime for p in built) > _newest_source():
        print(f"\nreusing {DIST} (newer than every source file)")
    else:
        t0 = time.monotonic()
        r = subprocess.run([str(REPO / "tools" / "package")], cwd=REPO, capture_output=True, text=True,
                           timeout=840)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        tail = r.stdout[r.stdout.rfind("tools/package: built"):].rstrip()
        print(f"\ntools/package took {time.monotonic() - t0:.1f} s\n{tail}")
    return built


@pytest.fixture(scope="module")
def bundle(artifacts, tmp_path_factory) -> Path:
    """The tarball unpacked where nothing of the source tree or the virtualenv is."""
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(TARBALL) as tar:
        tar.extractall(where, filter="tar")
    return where / "sybar"


def bundle_env(bundle: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SYBAR_SA_PASSWORD", "SYBAR_HOME")
           and not k.startswith("QT_")}
    env["PATH"] = f"{bundle}:/usr/bin:/bin"
    env.update(extra)
    return env


def run(bundle: Path, cwd: Path, *args: str, timeout: float = 180, input: str | None = None,
        **extra) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=bundle_env(bundle, **extra), capture_output=True, text=True,
                          timeout=timeout, input=input)


def children(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_bundle_backs_up_restores_and_draws_its_window(bundle, tmp_path):
    work = tmp_path / "work"      # the cwd: outside the source tree
    work.mkdir()
    home = tmp_path / "home"
    sybar = str(bundle / "sybar")
    assert shutil.which("sybar", path=bundle_env(bundle)["PATH"]) == sybar
    assert (bundle / "sybar-isql").is_symlink() and os.readlink(bundle / "sybar-isql") == "sybar"

    r = run(bundle, work, "sybar", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"sybar {__version__}", r.stdout + r.stderr

    # the same sa password the rest of the suite keeps in the (test) keyring, through the bundle's keyring
    r = run(bundle, work, "sybar", "password", "set", "SYBAR", "sa", input=SA_PASSWORD + "\n")
    assert r.returncode == 0, r.stdout + r.stderr

    t0 = time.monotonic()
    r = run(bundle, work, "sybar", "demo", "--once", "--home", str(home), "--listen", "127.0.0.1:0",
            "--size-mb", "4")
    assert r.returncode == 0 and "ended with status 0" in r.stdout, r.stdout + r.stderr
    print(f"demo home with its first backup: {time.monotonic() - t0:.1f} s")

    serve = subprocess.Popen([sybar, "serve", "--home", str(home), "--listen", "127.0.0.1:0"], cwd=work,
                             env=bundle_env(bundle), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = serve.stdout.readline()
        assert "listening on" in line, line + (serve.stdout.read() if serve.poll() is not None else "")
        # the media server is the bundle's own executable (engine/frozen.py), not a Python interpreter
        media = [p for p in children(serve.pid)
                 if b"__module\0engine.media" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert media, f"no media server child of sybar serve (pid {serve.pid})"
        assert Path(f"/proc/{media[0]}/exe").resolve() == Path(sybar).resolve()

        isql_env = {"FREETDSCONF": str(home / "freetds.conf"), "SYBAR_HOME": str(home)}
        marker = "insert into orders (id, customer_id, status, amount, note) values (9999999, 1, 'BUNDLE', 1.5, 'x')"
        r = run(bundle, work, "sybar-isql", "-Usa", "-SSYBAR", "-Dmydb", "-w", "200",
                input=f"{marker}\ngo\n", **isql_env)
        assert r.returncode == 0 and "Msg" not in r.stdout, r.stdout + r.stderr

        t0 = time.monotonic()
        r = run(bundle, work, "sybar", "backup", "--home", str(home), str(home / "scripts" / "sybase_mydb_backup"))
        assert r.returncode == 0, r.stdout + r.stderr
        print(f"backup: {time.monotonic() - t0:.1f} s")
        r = run(bundle, work, "sybar", "list", "--json", "--home", str(home), "--database", "mydb")
        assert r.returncode == 0, r.stdout + r.stderr
        images = json.loads(r.stdout)
        assert len(images) >= 2, images          # the demo's backup and ours
        newest = max(images, key=lambda i: i["backup_time_unix"])
        assert newest["type"] == "D" and newest["state"] == "complete", newest

        t0 = time.monotonic()
        r = run(bundle, work, "sybar", "restore", "--image", newest["backup_id"], "--database", "mydb_restore",
                "--home", str(home))
        assert r.returncode == 0, r.stdout + r.stderr
        print(f"restore: {time.monotonic() - t0:.1f} s")
        counts = {}
        for db in ("mydb", "mydb_restore"):
            r = run(bundle, work, "sybar-isql", "-Usa", "-SSYBAR", f"-D{db}", "-b", "-w", "200",
                    input="select count(*) from orders where status = 'BUNDLE'\ngo\nselect count(*) from orders\ngo\n",
                    **isql_env)
            assert r.returncode == 0 and "Msg" not in r.stdout, r.stdout + r.stderr
            counts[db] = [int(n) for n in re.findall(r"^\s*(\d+)\s*$", r.stdout, re.M)]
        assert counts["mydb"][0] == 1 and counts["mydb_restore"] == counts["mydb"], counts
        for table in ("customer", "orders"):
            assert table_digest(home / "data" / "mydb_restore.db", table) == \
                table_digest(home / "data" / "mydb.db", table)

        t0 = time.monotonic()
        shot = tmp_path / "window.png"
        r = run(bundle, work, "sybar", "gui", "--home", str(home), "--screenshot", str(shot), timeout=120,
                QT_QPA_PLATFORM="offscreen")
        assert r.returncode == 0 and shot.is_file(), r.stdout + r.stderr
        print(f"offscreen screenshot: {time.monotonic() - t0:.1f} s")
        # and on X11: the bundle's xcb platform plugin with its xcb libraries, under Xvfb
        t0 = time.monotonic()
        shot_x11 = tmp_path / "window-x11.png"
        r = run(bundle, work, "xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "sybar", "gui", "--home", str(home),
                "--screenshot", str(shot_x11), timeout=120, QT_QPA_PLATFORM="xcb")
        assert r.returncode == 0 and shot_x11.is_file(), r.stdout + r.stderr
        print(f"screenshot under Xvfb: {time.monotonic() - t0:.1f} s")
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert serve.returncode == 0

    # with no daemon, the command line starts one: the bundle's own sybar (engine/frozen.py), not python -m
    r = run(bundle, work, "sybar", "list", "--json", "--home", str(home), "--database", "mydb")
    state = json.loads((home / "control.json").read_text()) if (home / "control.json").exists() else {}
    try:
        assert r.returncode == 0 and "started `sybar serve`" in r.stderr, r.stdout + r.stderr
        assert [i["backup_id"] for i in json.loads(r.stdout)] == [i["backup_id"] for i in images]
        assert Path(f"/proc/{state['pid']}/exe").resolve() == Path(sybar).resolve()
    finally:
        if state.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(state["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + 30
            while alive(int(state["pid"])) and time.monotonic() < deadline:
                time.sleep(0.1)

    from PySide6.QtGui import QImage

    for png in (shot, shot_x11):
        image = QImage(str(png))
        assert image.width() >= 800 and image.height() >= 500, (png.name, image.width(), image.height())
        colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        assert len(colors) > 20, f"{png.name} is nearly blank ({len(colors)} colours)"


def test_tarball_installs_a_menu_entry(bundle, tmp_path):
    prefix = tmp_path / "prefix"
    r = subprocess.run([str(bundle / "install.sh"), str(prefix)], capture_output=True, text=True, timeout=60,
                       env=bundle_env(bundle))
    assert r.returncode == 0, r.stdout + r.stderr
    entry = prefix / "share" / "applications" / f"{APP}.desktop"
    assert f"Exec={bundle}/sybar gui" in entry.read_text()
    r = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert r.returncode == 0 and "error" not in r.stdout.lower(), r.stdout + r.stderr
    for size in (16, 32, 48, 64, 128, 256):
        assert (prefix / "share" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP}.png").is_file()
    r = subprocess.run([str(prefix / "bin" / "sybar"), "--version"], capture_output=True, text=True, timeout=60,
                       env=bundle_env(bundle, PATH="/usr/bin:/bin"))
    assert r.stdout.strip() == f"sybar {__version__}", r.stdout + r.stderr


def test_desktop_entry_and_metainfo_validate():
    r = subprocess.run(["desktop-file-validate", str(REPO / "resources" / f"{APP}.desktop")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr      # not even a hint
    r = subprocess.run(["appstreamcli", "validate", "--no-net", str(REPO / "resources" / f"{APP}.metainfo.xml")],
                       capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not re.search(r"^[EW]: ", r.stdout, re.M), r.stdout     # no errors, no warnings


def test_deb_holds_the_bundle(artifacts, tmp_path):
    info = subprocess.run(["dpkg-deb", "--field", str(DEB), "Package", "Version", "Architecture", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: sybar" in info and f"Version: {__version__}" in info and "Architecture: amd64" in info
    listing = subprocess.run(["dpkg-deb", "--contents", str(DEB)], capture_output=True, text=True,
                             check=True).stdout
    for needed in ("./opt/sybar/sybar", "./usr/bin/sybar -> /opt/sybar/sybar",
                   "./usr/bin/sybar-isql -> /opt/sybar/sybar-isql", f"./usr/share/applications/{APP}.desktop",
                   f"./usr/share/metainfo/{APP}.metainfo.xml", f"./usr/share/icons/hicolor/256x256/apps/{APP}.png",
                   f"./usr/share/icons/hicolor/scalable/apps/{APP}.svg"):
        assert needed in listing, needed
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(DEB), str(root)], check=True, timeout=120)
    r = subprocess.run([str(root / "opt" / "sybar" / "sybar"), "--version"], capture_output=True, text=True,
                       timeout=60, env=bundle_env(root / "opt" / "sybar"))
    assert r.stdout.strip() == f"sybar {__version__}", r.stdout + r.stderr
