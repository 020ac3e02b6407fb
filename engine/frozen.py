"""sybar as a desktop app: the commands that start sybar's own processes, frozen or not.

In a PyInstaller bundle (packaging/sybar.spec) ``sys.executable`` is the
bundle's ``sybar``, not a Python interpreter: ``python -m engine.media`` has no
meaning there. The bundle's one executable therefore also answers to hidden
subcommands (``sybar __module engine.media ...``), and ``sybar-isql`` is a
symlink to it that :func:`bundle_main` recognises by name. Run from a
virtualenv, every command is exactly what it was before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `sybar __module NAME ARGS...` runs `python -m NAME ARGS...` inside a bundle (only these modules)
MODULE_SUBCOMMAND = "__module"
BUNDLED_MODULES = ("engine.media",)


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def module_command(module: str) -> list[str]:
    """The argv prefix that runs ``python -m module``, in a virtualenv or in the bundle."""
    if is_frozen():
        return [sys.executable, MODULE_SUBCOMMAND, module]
    return [sys.executable, "-m", module]


def sybar_command() -> list[str]:
    """The argv prefix that runs the ``sybar`` command line of this installation."""
    if is_frozen():
        return [sys.executable]
    exe = Path(sys.executable).with_name("sybar")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "engine.cli"]


def _run_module(module: str, argv: list[str]) -> int:
    if module not in BUNDLED_MODULES:
        print(f"sybar: {module} is not a module this bundle runs", file=sys.stderr)
        return 2
    from engine.media.main import main as media_main

    return media_main(argv)


def bundle_main(argv: list[str] | None = None) -> int:
    """The bundle's entry point: ``sybar``, ``sybar-isql`` (by its name) and the hidden module runner."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.path.basename(sys.argv[0]) == "sybar-isql":
        from engine.isql.main import main as isql_main

        return isql_main(argv)
    if argv[:1] == [MODULE_SUBCOMMAND] and len(argv) >= 2:
        return _run_module(argv[1], argv[2:])
    from engine.cli import main as cli_main

    return cli_main(argv)
