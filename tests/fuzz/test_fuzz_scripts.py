"""Script parser fuzzing (engine/bphdb/script.py analyze_text / analyze_script, and the linter on top).

analyze_script never raises for a bad script: random text, shell-ish token soup and mutations of real
NetBackup-style scripts all give a ScriptAnalysis whose summary serialises, and the linter's findings
carry lines inside the script. SQL files the text names (-i /dev/zero, a FIFO) are read only when they
are bounded regular files. Long mode: ``SYBAR_FUZZ=long .venv/bin/python -m pytest -q tests/fuzz/``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from engine.bphdb.lint import lint_analysis
from engine.bphdb.script import analyze_script, analyze_text

REPO = Path(__file__).resolve().parents[2]
SEEDS = [p.read_text(errors="replace") for p in sorted((REPO / "resources" / "scripts").glob("sybase_*"))
         if not p.name.endswith(".sql")]
SEEDS += [p.read_text(errors="replace") for p in sorted((REPO / "tests" / "dataserver" / "data" / "scripts").glob("*/*"))
          if p.is_file() and not p.name.endswith((".sql", ".json", ".md"))]
WORK = Path(tempfile.mkdtemp(prefix="sybar-fuzz-scripts-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
FIFO = WORK / "fifo.sql"
os.mkfifo(FIFO)
(WORK / "ok.sql").write_text("dump database mydb to '/tmp/x'\ngo\n")

VOCAB = ["#!/bin/sh", "\n", " ", "isql", "fisql", "$ISQL", '"$ISQL"', "-Usa", "-U", "sa", "-S", "$SYBSERVER", "-P",
         "-i", "-o", "-w", "200", "<", "<<", "<<EOF", "<<'EOF'", "<<-END", "EOF", "END", ">", ">>", "|", "||", "&&",
         ";", "&", "(", ")", "{", "}", "`", "$(", "${", "}", "${X:-", "${#X}", "$@", "$0", "$$", "'", '"', "\\",
         "#", "if", "then", "fi", "for", "in", "do", "done", "while", "case", "esac", ";;", "X=", "HERE=`dirname $0`",
         "$HERE/", "ok.sql", str(WORK / "ok.sql"), str(FIFO), "/dev/zero", "/dev/stdin", "missing.sql", "go",
         "dump database mydb to", '"sybackup::-POL Sybase_ASE"', "stripe on", "load database", "with",
         "compression = 101", "online database mydb", "cat", "echo", "exit 1", "export", "=", "*", "?", "[", "]"]


def check(text: str) -> None:
    a = analyze_text(text, WORK / "sybase_fuzz_backup")
    summary = a.to_dict()
    json.dumps(summary)
    assert summary["kind"] in ("backup", "tran_backup", "restore", "unknown")
    lines = text.count("\n") + 1
    for call in a.isql_calls:
        assert 1 <= call.line <= lines + 1
    for f in lint_analysis(a):
        assert f.code and f.problem


@FUZZ
@given(st.text(max_size=600))
def test_random_text(text):
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(VOCAB), max_size=80), st.lists(st.sampled_from([" ", "", "\n"]), max_size=80))
def test_token_soup(words, gaps):
    check("".join(w + (gaps[i] if i < len(gaps) else " ") for i, w in enumerate(words)))


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 5))):
        n = len(text)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 40)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap-quote"]))
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(st.sampled_from(VOCAB)) + text[a:]
        elif op == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        else:
            text = text[:a] + text[a:b].replace('"', "'").replace("`", '"') + text[b:]
    return text


@FUZZ
@given(mutated())
def test_mutated_real_scripts(text):
    check(text)


@FUZZ
@given(st.binary(max_size=600))
def test_script_files_of_random_bytes(raw):
    p = WORK / "sybase_bytes_backup"
    p.write_bytes(raw)
    a = analyze_script(p)
    json.dumps(a.to_dict())


def test_special_files_are_not_read():
    """-i /dev/zero, -i a FIFO, a FIFO as the script itself: no hang, no unbounded read."""
    a = analyze_text(f"#!/bin/sh\nisql -Usa -i /dev/zero\nisql -Usa -i {FIFO}\n", WORK / "s")
    assert [c.sql_file_state for c in a.isql_calls] == ["unreadable", "unreadable"]
    assert analyze_script(FIFO).readable is False
    assert len(SEEDS) >= 5
