"""The Sybase script linter: what a DBA should fix before a script goes in a policy.

``lint(path, known_databases=None)`` returns ``Finding``s (file, line, code,
severity, problem); line 0 means the whole file. ``code`` is a stable key;
``problem`` says what is wrong and what to do. Errors are what makes a backup
fail or leak a secret; warnings are what a careful DBA would still look at.

Codes (severity):

=========================  ========  ====================================================
script-not-found           error     the script does not exist or cannot be read
not-executable             error     bphdb runs the script directly: it needs its x bit
world-writable             error     anyone can change what runs as the backup user
                                     (the script, or the SQL file it feeds isql)
no-isql-invocation         error     nothing runs isql (hint: a commented-out isql line)
sql-file-missing           error     ``isql -i FILE`` names a file that does not exist
sql-file-unreadable        error     the SQL file exists but cannot be read
sql-file-unresolved        warning   the -i path depends on run-time values
password-on-command-line   error     ``-P`` puts the password in every ``ps`` listing
sql-syntax                 error     the SQL (file or here-document) does not parse
no-backup-statement        warning   isql runs, but no dump or load statement
no-sql-input               warning   isql gets neither -i, a redirection nor a here-document
too-many-stripes           error     more than 32 devices in one dump or load
duplicate-stripe-device    error     two stripes write the same file
unknown-sybackup-option    error     a ``sybackup::`` flag sybar does not know
bad-sybackup-device        error     other unreadable ``sybackup::`` strings
unknown-database           error     (only with known_databases) a database not on the server
truncate-only              warning   ``dump tran ... with truncate_only/no_log`` breaks the log chain
load-not-onlined           warning   a load database/transaction with no ``online database`` after it
unterminated-heredoc       warning   a here-document that never meets its delimiter
not-a-script               error     a SQL file (isql input) selected instead of its script
no-shebang                 error     no ``#!`` first line: bphdb's execve fails (Exec format error)
crlf-line-endings          error     DOS line endings: ``#!/bin/sh\r`` and every word end in ``\r``
=========================  ========  ====================================================
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.bphdb.script import ScriptAnalysis, analyze_script

__all__ = ["Finding", "lint", "lint_analysis", "MAX_STRIPES", "CODES"]

MAX_STRIPES = 32

CODES = {
    "script-not-found": "error", "not-executable": "error", "world-writable": "error",
    "no-isql-invocation": "error", "sql-file-missing": "error", "sql-file-unreadable": "error",
    "sql-file-unresolved": "warning", "password-on-command-line": "error", "sql-syntax": "error",
    "no-backup-statement": "warning", "no-sql-input": "warning", "too-many-stripes": "error",
    "duplicate-stripe-device": "error", "unknown-sybackup-option": "error", "bad-sybackup-device": "error",
    "unknown-database": "error", "truncate-only": "warning", "load-not-onlined": "warning",
    "unterminated-heredoc": "warning", "not-a-script": "error",
    "no-shebang": "error", "crlf-line-endings": "error",
}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int  # 0: the whole file
    code: str
    severity: str  # "error" | "warning"
    problem: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity} [{self.code}] {self.problem}"


def _f(file, line: int, code: str, problem: str) -> Finding:
    return Finding(str(file), int(line), code, CODES[code], problem)


def lint(path: str | os.PathLike, *, known_databases: set[str] | None = None) -> list[Finding]:
    """Every finding for one script, sorted by file then line."""
    p = Path(path)
    if not p.exists():
        return [_f(p, 0, "script-not-found", f"the script {p} does not exist; check the path")]
    if not p.is_file():
        return [_f(p, 0, "script-not-found", f"{p} is not a regular file; name a shell script")]
    return lint_analysis(analyze_script(p), known_databases=known_databases)


def lint_analysis(a: ScriptAnalysis, *, known_databases: set[str] | None = None) -> list[Finding]:
    """The findings for an analysis already made (the GUI's preview reuses its analysis)."""
    p = a.path
    script = str(p)
    out: list[Finding] = []
    if not a.readable:
        return [_f(p, 0, "script-not-found", f"the script cannot be read ({a.read_error}); fix its "
                                             "permissions so the backup user can read it")]
    if a.binary:
        return [_f(p, 0, "not-a-script", f"{p.name} is not a text file (binary, or over 4 MB), so it is not a shell "
                                         "script; select the backup script instead")]
    if a.is_sql_file:
        return [_f(p, 0, "not-a-script", _not_a_script(p))]
    out.extend(_permissions(p, script=True))
    if not a.text.startswith("#!"):
        out.append(_f(p, 1, "no-shebang",
                      "the script does not start with a #! line, and bphdb runs it directly, so it fails with "
                      "'Exec format error'; make #!/bin/sh its first line"))
    if "\r\n" in a.text:
        line = a.text[: a.text.index("\r\n")].count("\n") + 1
        out.append(_f(p, line, "crlf-line-endings",
                      "the script has DOS (CRLF) line endings, so the shell sees a stray carriage return at the "
                      "end of every line (#!/bin/sh^M cannot run); convert it with dos2unix"))

    if not a.isql_calls:
        if a.commented_isql_lines:
            lines = a.commented_isql_lines
            if len(lines) == 1:
                where = f"the only isql line, {lines[0]}, is a comment"
            else:
                where = f"the isql lines {', '.join(map(str, lines))} are comments"
            problem = (f"the script never runs isql ({where}), so it cannot back anything up; "
                       "remove the '#' or add the isql command")
        else:
            problem = ("the script never runs isql, so it cannot back anything up; add an isql command "
                       "that runs the dump (isql -U login -S server -i file.sql)")
        out.append(_f(p, 0, "no-isql-invocation", problem))

    for h in a.unterminated_heredocs:
        out.append(_f(p, h.line, "unterminated-heredoc",
                      f"the here-document started here never meets its end line '{h.delimiter}', so it runs "
                      "to the end of the script; add the delimiter on a line of its own"))

    checked_files: set[str] = set()
    for call in a.isql_calls:
        for letter, value, line in call.flags:
            if letter == "P":
                shown = f"-P {value}" if letter in call.spaced else f"-P{value or ''}"
                out.append(_f(p, line, "password-on-command-line",
                              f"isql gets the password with {shown}, so it is visible in the process list; "
                              "use the keyring"))
        if call.sql_source == "file":
            shown = a.display_path(call.sql_file) if call.sql_file else call.sql_file_text
            beside = (" beside the script" if call.sql_file and os.path.dirname(call.sql_file)
                      == str(p.parent.resolve()) else "")
            if call.sql_file_state == "missing":
                out.append(_f(p, call.line, "sql-file-missing",
                              f"isql -i names {shown}{beside}, and that file does not exist; create it or "
                              "correct the path"))
            elif call.sql_file_state == "unreadable":
                out.append(_f(p, call.line, "sql-file-unreadable",
                              f"isql -i names {shown}, which cannot be read; make it readable by the "
                              "backup user"))
            elif call.sql_file_state == "unresolved":
                out.append(_f(p, call.line, "sql-file-unresolved",
                              f"isql -i names {shown}, a path known only at run time, so it was not "
                              "checked; make sure the file exists when the script runs"))
            elif call.sql_file_state == "ok" and call.sql_file not in checked_files:
                checked_files.add(call.sql_file)
                out.extend(_permissions(Path(call.sql_file), script=False))
        elif call.sql_source == "stdin":
            out.append(_f(p, call.line, "no-sql-input",
                          "isql gets neither -i FILE nor a here-document, so it reads its SQL from the "
                          "job's standard input, which is empty under bphdb; give it -i FILE or a here-document"))
        for e in call.syntax_errors:
            out.append(_f(e.file, e.line, "sql-syntax",
                          f"isql would refuse this SQL: {e.message} Correct the statement"))
        out.extend(_statements(call, known_databases))
    if a.isql_calls and not a.backup_statements:
        known = [c for c in a.isql_calls if not c.syntax_errors and not c.in_substitution
                 and (c.sql_source == "heredoc" or c.sql_file_state in ("ok", "generated"))]
        if known and len(known) == len([c for c in a.isql_calls if not c.in_substitution]):
            out.append(_f(p, known[0].line, "no-backup-statement",
                          "isql runs here, but its SQL has no dump or load statement, so no backup image "
                          "is made; add a dump database statement (a stored procedure that dumps is not "
                          "seen by the linter)"))
    return _sorted([_relative(f, p) for f in out], script)


def _relative(f: Finding, script: Path) -> Finding:
    """A SQL file beside the script is named the way the script was named (relative stays relative)."""
    base = str(script.parent.resolve())
    if f.file.startswith(base + os.sep) and not script.is_absolute():
        return Finding(str(script.parent / os.path.relpath(f.file, base)), f.line, f.code, f.severity, f.problem)
    return f


def _not_a_script(p: Path) -> str:
    users = []
    try:
        for sib in sorted(p.parent.iterdir()):
            if sib != p and sib.is_file() and sib.stat().st_size < 1_000_000:
                with contextlib.suppress(OSError):
                    if p.name in sib.read_text(errors="replace"):
                        users.append(sib.name)
    except OSError:
        pass
    hint = f" ({', '.join(users[:3])} uses it)" if users else ""
    return (f"{p.name} is an isql input (SQL) file, not a shell script; select the script that runs isql "
            f"with it instead{hint}")


def _permissions(path: Path, *, script: bool) -> list[Finding]:
    out = []
    try:
        st = path.stat()
    except OSError:
        return out
    if script and not os.access(path, os.X_OK) and not st.st_mode & 0o111:
        out.append(_f(path, 0, "not-executable",
                      "the script is not executable, and bphdb runs it directly; chmod +x it"))
    if st.st_mode & stat.S_IWOTH:
        what = "the script" if script else "this SQL file, which the script feeds to isql,"
        out.append(_f(path, 0, "world-writable",
                      f"{what} is writable by every user, who could make the backup run anything; "
                      "chmod o-w it"))
    return out


def _statements(call, known_databases: set[str] | None) -> list[Finding]:
    out = []
    stmts = call.statements
    for i, s in enumerate(stmts):
        if s.op == "online database":
            continue
        n = len(s.devices)
        if n > MAX_STRIPES:
            out.append(_f(s.file, s.line, "too-many-stripes",
                          f"{s.op} {s.database} uses {n} devices, and a dump or load takes at most "
                          f"{MAX_STRIPES}; use fewer stripes"))
        seen: dict[str, int] = {}
        for dev, line, opts in zip(s.devices, s.device_lines, s.sybackup, strict=False):
            low = dev.lower()
            if low.startswith("sybackup::"):
                if opts is None:
                    out.extend(_sybackup_problem(s, dev, line))
                continue
            if "<" in dev or dev.startswith("@") or s.op.startswith("load"):
                continue
            if dev in seen:
                out.append(_f(s.file, line, "duplicate-stripe-device",
                              f"two stripes of {s.op} {s.database} write the same file {dev} (also line "
                              f"{seen[dev]}); give each stripe its own file"))
            else:
                seen[dev] = line
        if s.op == "dump transaction":
            flags = [k for k in ("truncate_only", "no_log") if s.with_options.get(k)]
            if flags:
                out.append(_f(s.file, s.line, "truncate-only",
                              f"dump transaction {s.database} with {flags[0]} throws the log away and breaks "
                              "the chain of transaction dumps; dump the log to a device instead"))
        if known_databases is not None:
            for db in s.databases:
                if db not in known_databases:
                    near = [k for k in known_databases if k.lower() == db.lower()]
                    hint = f" (did you mean {near[0]}? names are case-sensitive)" if near else ""
                    out.append(_f(s.file, s.line, "unknown-database",
                                  f"{s.op} names the database {db}, which the dataserver does not have{hint}; "
                                  "correct the name or create the database"))
        if s.op in ("load database", "load transaction"):
            later = stmts[i + 1 :]
            if not any(x.op == "online database" and x.database == s.database for x in later) and not any(
                    x.op.startswith("load") and x.database == s.database for x in later):
                out.append(_f(s.file, s.line, "load-not-onlined",
                              f"{s.op} {s.database} leaves the database offline and nothing onlines it; add "
                              f"'online database {s.database}' after the last load"))
    return out


def _sybackup_problem(s, dev: str, line: int) -> list[Finding]:
    from engine.config import DEVICE_FLAGS, parse_sybackup_options
    from engine.jobs.status import StatusError

    try:
        parse_sybackup_options(dev)
        return []
    except StatusError as e:
        message = str(e)
    text = dev[len("sybackup::"):]
    unknown = [t for t in re.split(r"\s+", text) if t.startswith("-") and len(t) > 1
               and t[1:].upper() not in DEVICE_FLAGS and "<" not in t]
    if unknown:
        return [_f(s.file, line, "unknown-sybackup-option",
                   f"the device \"{dev}\" has the option {unknown[0]}, which sybackup:: does not take; use -SERV, "
                   "-CLIENT, -POLICY (or -POL) and -SCHED")]
    if "<" in dev:  # a run-time value may well make it right
        return []
    return [_f(s.file, line, "bad-sybackup-device", message)]


def _sorted(findings: list[Finding], script: str) -> list[Finding]:
    unique = list(dict.fromkeys(findings))  # a loop gives one isql call per word: say things once
    return sorted(unique, key=lambda f: (f.file != script, f.file, f.line))
