"""bphdb: start a Sybase script as a real child process with the job's context.

The script runs directly (execve of its path, never a shell string built from
input), in a new session so that every process it starts (isql, fisql, a
shell loop) carries the script's pid as its session id. That is how the
dataserver ties an isql login back to the job that started it (see
``job_for_client_pid``), the way NetBackup hands context to its agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.jobs.status import StatusError

# NetBackup: 71 none of the files in the file list exist; 69 invalid filelist specification
FILES_MISSING = 71
INVALID_FILELIST = 69

# the environment a script never inherits from the daemon
SECRET_VARIABLES = ("SYBAR_SA_PASSWORD",)


@dataclass
class ScriptContext:
    """What bphdb tells the script, as SYBACKUP_* variables (README lists them)."""

    job_id: int
    master_server: str
    client: str
    policy: str
    schedule: str
    schedule_type: int            # 0 full, 1 incr, 2 user backup, ...
    operation: str = "backup"     # backup | restore
    keyword: str = ""
    home: str = ""
    extra: dict = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        full = self.schedule_type in (0, 2, 3)
        env = {
            "SYBACKUP_SERVER": self.master_server,
            "SYBACKUP_CLIENT": self.client,
            "SYBACKUP_POLICY": self.policy,
            "SYBACKUP_SCHED": self.schedule,
            "SYBACKUP_SCHED_TYPE": str(self.schedule_type),
            "SYBACKUP_JOBID": str(self.job_id),
            "SYBACKUP_OPERATION": self.operation,
            "SYBACKUP_FULL" if full else "SYBACKUP_INCR": "1",
            "SYBACKUP_USER_INITIATED": "1",
            "SYBACKUP_KEYWORD": self.keyword,
        }
        if self.home:
            env["SYBAR_HOME"] = self.home
        env.update(self.extra)
        return env


def check_script(path: str | os.PathLike) -> Path:
    """The checks bphdb makes before it runs anything; each failure says what to fix."""
    script = Path(path).expanduser()
    if not script.is_absolute():
        script = script.resolve()
    try:
        st = script.stat()
    except FileNotFoundError:
        raise StatusError(FILES_MISSING, f"the script {script} does not exist: check the path in the backup "
                                         "selection") from None
    except PermissionError:
        raise StatusError(INVALID_FILELIST, f"the script {script} cannot be read by the sybar daemon") from None
    if not stat.S_ISREG(st.st_mode):
        raise StatusError(INVALID_FILELIST, f"{script} is not a regular file: a backup selection names a script")
    if not os.access(script, os.X_OK):
        raise StatusError(INVALID_FILELIST, f"the script {script} is not executable: run `chmod u+x {script}`")
    if st.st_mode & stat.S_IWOTH:
        raise StatusError(INVALID_FILELIST, f"the script {script} is world-writable, so anyone could change what "
                                            f"runs as you: run `chmod o-w {script}`")
    _check_sql_files(script)
    return script


def _check_sql_files(script: Path) -> None:
    """71 when the script's isql reads (-i or <) a SQL file that does not exist: refused before it runs."""
    from engine.bphdb.script import analyze_script

    try:
        analysis = analyze_script(script)
    except Exception:  # the analysis only adds a check; a script it cannot read still runs as before
        return
    for call in analysis.isql_calls:
        if call.sql_source == "file" and call.sql_file_state == "missing" and not call.sql_file_defaulted:
            raise StatusError(FILES_MISSING, f"the SQL file {call.sql_file} that {script} feeds to isql (line "
                                             f"{call.line}) does not exist: create it or correct the path")


def script_environment(context: ScriptContext, isql: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    if isql and "ISQL" not in env:
        env["ISQL"] = isql
    if context.home:
        # FreeTDS clients (fisql, tsql) find the home's dataserver through its freetds.conf
        env.setdefault("FREETDSCONF", str(Path(context.home) / "freetds.conf"))
    env.update(context.environment())
    return env


class ScriptRun:
    """One running script: its process, its output lines, its end."""

    def __init__(self, script: Path, env: dict[str, str], on_line, stdin_password: str | None = None):
        self.script = script
        self.env = env
        self.on_line = on_line
        # an isql that prompts (FreeTDS fisql) reads the login's password from the script's stdin:
        # a pipe, never argv, the environment or a file
        self.stdin_password = stdin_password
        self.proc: asyncio.subprocess.Process | None = None
        self.cancelled = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(self.script), cwd=str(self.script.parent), env=self.env,
            stdin=asyncio.subprocess.PIPE if self.stdin_password else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        if self.stdin_password:
            self.proc.stdin.write(self.stdin_password.encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await self.proc.stdin.drain()
            self.proc.stdin.close()
            self.stdin_password = None

    async def wait(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            self.on_line(line.decode(errors="replace").rstrip("\n"))
        return await self.proc.wait()

    async def end_session(self, grace_s: float = 2.0) -> None:
        """After the script ended: stop whatever it started and left running (an isql whose script was
        killed would otherwise go on dumping for a job that is over)."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = asyncio.get_running_loop().time() + grace_s
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                try:
                    os.killpg(self.proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    return

    async def cancel(self, grace_s: float = 5.0) -> None:
        """Stop the script and everything it started (its whole session)."""
        self.cancelled = True
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def session_of(pid: int) -> int | None:
    """The session id of a local process (the script's pid for anything a script started)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return int(fields[3])
    except (IndexError, ValueError):
        return None


def environment_of(pid: int) -> dict[str, str]:
    """A local process's environment (the script's variables as isql inherited them)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env
