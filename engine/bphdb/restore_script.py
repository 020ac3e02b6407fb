"""Save a restore as a Sybase restore script: the script + SQL pair a DBA reruns.

The same shape as the sample restore script (isql runs the SQL file beside
it; its output is checked for Msg and for Backup Server's completion line), so
it runs from Select for Backup or `sybar restore SCRIPT` like NetBackup's
restore scripts, and lints clean.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from engine.jobs.status import StatusError

INVALID = 20  # NetBackup: invalid command parameter

_SCRIPT = """#!/bin/sh
# {name} -- written by sybar on {when}: {summary}
# isql runs the SQL file beside this script; the password comes from the OS
# keyring (sybar isql), or from this script's standard input (bphdb fills it
# for isql programs that prompt, such as FreeTDS fisql).  The target database
# is overwritten.

SYBSERVER=${{SYBSERVER:-{server}}}
SYBUSER=${{SYBUSER:-{user}}}
ISQL=${{ISQL:-sybar-isql}}

HERE=`dirname "$0"`
SQLFILE=$HERE/{name}.sql
OUT=${{TMPDIR:-/tmp}}/{name}.$$.out

"$ISQL" -U"$SYBUSER" -S"$SYBSERVER" -w 200 -e -i "$SQLFILE" -o "$OUT"
RC=$?
cat "$OUT"
if [ $RC -ne 0 ] || grep -q "^Msg" "$OUT" || ! grep -q "LOAD is complete" "$OUT"; then
    echo "`date`: {name} FAILED (isql status $RC)" >&2
    rm -f "$OUT"
    exit 1
fi
rm -f "$OUT"
echo "`date`: {name} completed"
exit 0
"""


def script_name(target: str, backup_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"sybase_{target}_restore_{backup_id}")


def write_restore_script(folder: Path, name: str, statements: list[str], *, summary: str,
                         server: str = "SYBAR", user: str = "sa") -> tuple[Path, Path]:
    """Write NAME (0700) and NAME.sql (0600) into FOLDER; never over an existing file."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", name) or name.startswith("."):
        raise StatusError(INVALID, f"{name!r} is not a usable script name: letters, digits, '_', '.', '-'")
    folder.mkdir(parents=True, exist_ok=True)
    script, sql = folder / name, folder / f"{name}.sql"
    for path in (script, sql):
        if path.exists():
            raise StatusError(INVALID, f"{path} exists already: choose another name or remove it first")
    body = "".join(f"{stmt}\ngo\n" for stmt in statements)
    header = f"-- {summary}\n-- written by sybar; each statement ends with go, as isql wants\n"
    _write(sql, header + body, 0o600)
    _write(script, _SCRIPT.format(name=name, when=time.strftime("%Y-%m-%d %H:%M:%S"), summary=summary,
                                  server=server, user=user), 0o700)
    return script, sql


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
