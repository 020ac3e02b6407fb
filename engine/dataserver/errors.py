"""ASE-style server errors: Msg number, severity (Level), state, text.

Raised anywhere while a statement runs and turned into an EED by the session,
so that scripts searching isql output for ``Msg`` see exactly what they would
see from ASE.
"""

from __future__ import annotations

import re
import sqlite3


class ServerError(Exception):
    def __init__(self, number: int, severity: int, text: str, state: int = 1):
        super().__init__(text)
        self.number = number
        self.severity = severity
        self.text = text
        self.state = state


def no_such_database(name: str) -> ServerError:
    return ServerError(
        911, 11,
        f"Attempt to locate entry in sysdatabases for database '{name}' by name failed - no entry found "
        "under that name. Make sure that name is entered properly.",
    )


def database_unavailable(name: str, state: str) -> ServerError:
    if state == "for load":
        return ServerError(
            921, 14,
            f"Database '{name}' has not been recovered yet - please wait and try again. "
            "It was created for load: run load database and then online database.",
        )
    if state == "load in progress":
        return ServerError(921, 14, f"Database '{name}' is being loaded - please wait and try again.")
    return ServerError(
        950, 14,
        f"Database '{name}' is currently offline. It was loaded and waits for ONLINE DATABASE {name}.",
    )


def syntax_error(near: str) -> ServerError:
    return ServerError(102, 15, f"Incorrect syntax near '{near}'.")


_NO_TABLE = re.compile(r"no such table: (?:\w+\.)?(\S+)")
_NO_COLUMN = re.compile(r"no such column: (\S+)")
_NEAR = re.compile(r'near "([^"]*)": syntax error')
_UNIQUE = re.compile(r"UNIQUE constraint failed: (\S+)")
_NOT_NULL = re.compile(r"NOT NULL constraint failed: (\S+)")
_EXISTS = re.compile(r"(?:table|index|view) (\S+) already exists")


def from_sqlite(exc: sqlite3.Error) -> ServerError:
    """Translate a SQLite error into the ASE message a DBA would recognise."""
    text = str(exc)
    if m := _NO_TABLE.search(text):
        return ServerError(
            208, 16,
            f"{m.group(1)} not found. Specify owner.objectname or use sp_help to check whether the object "
            "exists (sp_help may produce lots of output).",
        )
    if m := _NO_COLUMN.search(text):
        return ServerError(207, 16, f"Invalid column name '{m.group(1)}'.")
    if m := _NEAR.search(text):
        return syntax_error(m.group(1))
    if "incomplete input" in text:
        return ServerError(102, 15, "Incorrect syntax near the end of the statement.")
    if m := _UNIQUE.search(text):
        return ServerError(2601, 14, f"Attempt to insert duplicate key row in object '{m.group(1)}' with unique index.")
    if m := _NOT_NULL.search(text):
        col = m.group(1)
        return ServerError(
            515, 16,
            f"Attempt to insert NULL value into column '{col.split('.')[-1]}', table '{col.split('.')[0]}'; "
            "column does not allow nulls. Update fails.",
        )
    if m := _EXISTS.search(text):
        return ServerError(
            2714, 16, f"There is already an object named '{m.group(1)}' in the database."
        )
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return ServerError(1205, 13, "Your server command encountered a deadlock situation (database locked); rerun it.")
    return ServerError(7200, 16, f"Statement failed: {text}.")
