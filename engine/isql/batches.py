"""isql's input: lines gathered into batches, each run as soon as its ``go`` arrives.

isql is line-based, like SAP's: it knows nothing of SQL comments or quotes.
A line that is only a command (any case, spaces around allowed) acts:

- ``go`` / ``go N``  sends the batch (N times); an empty batch is not sent;
- ``reset``          forgets the lines gathered so far;
- ``quit`` / ``exit`` stops reading (the gathered lines are not sent).

Every other line joins the batch. At the end of the input a batch that had no
``go`` is NOT sent, as SAP isql does; the reader keeps it in ``pending`` so
the caller can warn about it. (``engine.dataserver.tsql.split_batches`` splits
a whole script at once; isql must read line by line to prompt and to run
each batch before the next line is even read, so it has this reader.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# A readline callable may return RESET (for example after Ctrl-C at the prompt).
RESET = object()

_QUIT = re.compile(r"^\s*(quit|exit)\s*$", re.IGNORECASE)
_RESET = re.compile(r"^\s*reset\s*$", re.IGNORECASE)


def _go_pattern(cmdend: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(cmdend)}(?:\s+(\d+))?\s*$", re.IGNORECASE)


@dataclass
class Batch:
    lines: list[str]
    first_line: int          # input line number (1-based) of the batch's first line
    repeat: int = 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class BatchReader:
    """Iterate to get batches; ``readline(prompt)`` returns a line (no newline) or None at the end."""

    readline: Callable[[str], object]
    cmdend: str = "go"
    prompts: bool = False
    pending: list[str] = field(default_factory=list)  # lines left without a go at the end
    quit: bool = False                                # input ended with quit/exit

    def __iter__(self) -> Iterator[Batch]:
        go = _go_pattern(self.cmdend)
        lines: list[str] = []
        first = 0
        lineno = 0
        while True:
            prompt = f"{len(lines) + 1}> " if self.prompts else ""
            line = self.readline(prompt)
            if line is None:
                break
            if line is RESET:
                lines = []
                continue
            assert isinstance(line, str)
            lineno += 1
            m = go.match(line)
            if m:
                if lines and any(s.strip() for s in lines):
                    count = int(m.group(1)) if m.group(1) else 1
                    yield Batch(lines, first, max(count, 1))
                lines = []
                continue
            if _RESET.match(line):
                lines = []
                continue
            if _QUIT.match(line):
                self.quit = True
                lines = []
                break
            if not lines:
                first = lineno
            lines.append(line)
        self.pending = lines if any(s.strip() for s in lines) else []


def stream_readline(stream) -> Callable[[str], str | None]:
    """A readline over a text stream, without prompts."""

    def readline(prompt: str) -> str | None:
        line = stream.readline()
        if not line:
            return None
        return line.removesuffix("\n").removesuffix("\r")

    return readline
