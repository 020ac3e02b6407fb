"""engine/frozen.py: the commands sybar starts itself, from a virtualenv and from a PyInstaller bundle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine import frozen


def test_from_a_virtualenv_the_commands_are_what_they_always_were(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert not frozen.is_frozen()
    assert frozen.module_command("engine.media") == [sys.executable, "-m", "engine.media"]
    exe = Path(sys.executable).with_name("sybar")
    expected = [str(exe)] if exe.exists() else [sys.executable, "-m", "engine.cli"]
    assert frozen.sybar_command() == expected


def test_in_a_bundle_the_bundle_runs_itself(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert frozen.is_frozen()
    assert frozen.module_command("engine.media") == [sys.executable, "__module", "engine.media"]
    assert frozen.sybar_command() == [sys.executable]


def test_the_hidden_module_runner_runs_only_the_media_server(capsys):
    assert frozen.bundle_main(["__module", "os"]) == 2
    assert "not a module this bundle runs" in capsys.readouterr().err


def test_the_media_server_starts_through_the_entry_point(tmp_path):
    """`bundle_main(["__module", "engine.media", ...])` is `python -m engine.media ...`: it listens."""
    code = "import sys; from engine.frozen import bundle_main; sys.exit(bundle_main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "__module", "engine.media", "--home", str(tmp_path),
                             "--listen", "127.0.0.1:0", "--unit", f"disk={tmp_path / 'unit'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "sybar media server listening on 127.0.0.1:" in line, line + proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
