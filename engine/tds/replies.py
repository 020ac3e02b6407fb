"""What a Session yields while it runs a batch; server.py turns each into tokens.

Kept free of wire details so the dataserver can produce replies without
knowing TDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tokens import Column


@dataclass
class Info:
    """A message at severity 10: isql prints the text alone (print, progress)."""

    text: str
    number: int = 0


@dataclass
class Error:
    """An error message (EED); it also sets the error bit on its statement's DONE."""

    number: int
    severity: int
    text: str
    state: int = 1
    line: int = 1
    proc: str = ""


@dataclass
class ResultFormat:
    columns: list[Column]


@dataclass
class ResultRow:
    values: tuple


@dataclass
class Done:
    """End of one statement; ``count`` None means no row count to show."""

    count: int | None = None
    error: bool = False


@dataclass
class DatabaseChanged:
    new: str
    old: str


Reply = Info | Error | ResultFormat | ResultRow | Done | DatabaseChanged
