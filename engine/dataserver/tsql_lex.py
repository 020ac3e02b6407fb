"""Lexer for the T-SQL front end (see ``tsql.py``): text in, tokens out, no I/O.

Comments (``--`` to the end of the line, nested ``/* */``) and white space are
dropped; every token keeps its offsets in the source and its 1-based line, so
statements can quote their exact source text. Everything is linear in the
input: strings and comments are scanned with ``str.find``, and the few regular
expressions have nothing to backtrack over.
"""

from __future__ import annotations

import re

__all__ = ["TSQLSyntaxError", "Token", "tokenize", "RESERVED"]


class TSQLSyntaxError(Exception):
    """A batch ASE would refuse at parse time.

    ``number`` is the ASE message number (102 "Incorrect syntax near ...",
    156 "... near the keyword ...", 105 unclosed quote, 113 missing end
    comment mark, 141 mixed assignment and retrieval); ``str(e) == e.message``.
    ``line`` is 1-based, counted like the statements' lines (``first_line`` based).
    """

    level = 15
    state = 1

    def __init__(self, message: str, line: int = 1, near: str = "", number: int = 102):
        super().__init__(message)
        self.message = message
        self.line = line
        self.near = near
        self.number = number

    def __str__(self) -> str:
        return self.message


# ASE 15.7 reserved words (the ones that matter to a parser: a bare word in
# this set is never a name, so it may start a new statement).
RESERVED = frozenset((
    "add", "all", "alter", "and", "any", "arith_overflow", "as", "asc", "at", "authorization", "avg",
    "begin", "between", "break", "browse", "bulk", "by", "cascade", "case", "char_convert", "check",
    "checkpoint", "close", "clustered", "coalesce", "commit", "compute", "confirm", "connect", "constraint",
    "continue", "controlrow", "convert", "count", "create", "current", "cursor", "database", "dbcc",
    "deallocate", "declare", "default", "delete", "desc", "deterministic", "disk", "distinct", "double",
    "drop", "dummy", "dump", "else", "end", "endtran", "errlvl", "errordata", "errorexit", "escape",
    "except", "exclusive", "exec", "execute", "exists", "exit", "exp_row_size", "external", "fetch",
    "fillfactor", "for", "foreign", "from", "func", "function", "goto", "grant", "group", "having",
    "holdlock", "identity", "identity_gap", "identity_start", "if", "in", "index", "inout", "insensitive",
    "insert", "install", "intersect", "into", "is", "isolation", "jar", "join", "key", "kill", "level",
    "like", "lineno", "load", "lock", "materialized", "max", "max_rows_per_page", "min", "mirror",
    "mirrorexit", "modify", "national", "new", "noholdlock", "nonclustered", "nonscrollable",
    "non_sensitive", "not", "null", "nullif", "numeric_truncation", "of", "off", "offsets", "on", "once",
    "online", "only", "open", "option", "or", "order", "out", "output", "over", "partition", "perm",
    "permanent", "plan", "prepare", "primary", "print", "privileges", "proc", "procedure", "processexit",
    "proxy_table", "public", "quiesce", "raiserror", "read", "readpast", "readtext", "reconfigure",
    "references", "remove", "reorg", "replace", "replication", "reservepagegap", "return", "returns",
    "revoke", "role", "rollback", "rowcount", "rows", "rule", "save", "schema", "scroll", "scrollable",
    "select", "semi_sensitive", "set", "setuser", "shared", "shutdown", "some", "statistics", "stringsize",
    "stripe", "sum", "syb_identity", "syb_restree", "syb_terminate", "table", "temp", "temporary",
    "textsize", "to", "tracefile", "tran", "transaction", "trigger", "truncate", "tsequal", "union",
    "unique", "unpartition", "update", "use", "user", "user_option", "using", "values", "varying", "view",
    "waitfor", "when", "where", "while", "with", "work", "writetext", "xmlextract", "xmlparse", "xmltest",
    "xmlvalidate"
))

# token kinds
WORD = "word"  # identifier or keyword
VAR = "var"  # @name
GVAR = "gvar"  # @@name
SSTR = "sstr"  # '...'
DSTR = "dstr"  # "..." (a string, or an identifier under quoted_identifier)
BRACKET = "bracket"  # [name]
NUM = "num"
OP = "op"
SHELL = "shell"  # $VAR, ${...}, $(...), `...` -- only when lexing shell here-documents

_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[^\W\d][\w#$@]*|#[\w#$@]*")
_VAR = re.compile(r"@@?[\w#$]+")
_TWO_CHAR_OPS = frozenset(("<>", "!=", "<=", ">=", "!<", "!>", "||"))
_SHELL_SIMPLE = re.compile(r"\$(?:\w+|[0-9#?@*$!-])")


class Token:
    __slots__ = ("kind", "text", "value", "start", "end", "line", "lower", "index")

    def __init__(self, kind: str, text: str, value: str, start: int, end: int, line: int):
        self.kind = kind
        self.text = text  # exact source text
        self.value = value  # strings and [names] without their quotes; otherwise the text
        self.start = start
        self.end = end
        self.line = line  # 1-based, relative to the text given to tokenize()
        self.lower = text.lower() if kind == WORD else ""
        self.index = -1  # position in the token list, set by tokenize()

    def is_word(self, *words: str) -> bool:
        return self.kind == WORD and self.lower in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == OP and self.text in ops

    @property
    def is_keyword(self) -> bool:
        return self.kind == WORD and self.lower in RESERVED

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Token({self.kind}, {self.text!r}, line={self.line})"


def unclosed_quote(rest: str, line: int) -> TSQLSyntaxError:
    rest = rest.rstrip()
    if len(rest) > 255:
        rest = rest[:255]
    return TSQLSyntaxError(f"Unclosed quote before the character string '{rest}'.", line, near=rest, number=105)


def missing_end_comment(line: int) -> TSQLSyntaxError:
    return TSQLSyntaxError("Missing end comment mark '*/'.", line, near="/*", number=113)


def block_comment_end(src: str, i: int) -> int:
    """``src[i:i+2] == '/*'``: the offset just past the matching ``*/`` (comments nest), or -1."""
    depth = 1
    k = i + 2
    while True:
        close = src.find("*/", k)
        if close < 0:
            return -1
        opening = src.find("/*", k, close)
        if opening >= 0:
            depth += 1
            k = opening + 2
            continue
        depth -= 1
        k = close + 2
        if depth == 0:
            return k


def string_end(src: str, i: int) -> int:
    """``src[i]`` is a quote: the offset just past the closing quote (doubled quotes escape), or -1."""
    q = src[i]
    k = i + 1
    while True:
        j = src.find(q, k)
        if j < 0:
            return -1
        if src.startswith(q, j + 1):
            k = j + 2
            continue
        return j + 1


def _shell_piece_end(src: str, i: int) -> int:
    """A shell expansion starting at ``src[i]`` (``$`` or a backquote): its end, or -1 if none."""
    c = src[i]
    if c == "`":
        j = src.find("`", i + 1)
        nl = src.find("\n", i + 1)
        return j + 1 if j >= 0 and (nl < 0 or j < nl) else -1
    nxt = src[i + 1 : i + 2]
    if nxt in ("{", "("):
        closer = "}" if nxt == "{" else ")"
        depth = 0
        for k in range(i + 1, min(len(src), i + 1 + 256)):
            ch = src[k]
            if ch == "\n":
                return -1
            if ch == nxt:
                depth += 1
            elif ch == closer:
                depth -= 1
                if depth == 0:
                    return k + 1
        return -1
    m = _SHELL_SIMPLE.match(src, i)
    return m.end() if m else -1


def tokenize(src: str, *, shell: bool = False, recover: bool = False) -> tuple[list[Token], TSQLSyntaxError | None]:
    """Split ``src`` into tokens.

    Raises TSQLSyntaxError (Msg 105 / 113) for an unclosed quote or comment, or
    with ``recover`` returns the tokens before the problem and the error.
    ``shell`` also takes ``$VAR``, ``${...}``, ``$(...)`` and backquoted
    commands as (parts of) words: SQL in a shell here-document before expansion.
    """
    tokens: list[Token] = []
    n = len(src)
    i = 0
    line = 1
    append = tokens.append

    def fail(err: TSQLSyntaxError) -> tuple[list[Token], TSQLSyntaxError | None]:
        if recover:
            return _indexed(tokens), err
        raise err

    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if c == "-" and src.startswith("--", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and src.startswith("/*", i):
            j = block_comment_end(src, i)
            if j < 0:
                return fail(missing_end_comment(line))
            line += src.count("\n", i, j)
            i = j
            continue
        if c == "'" or c == '"':
            j = string_end(src, i)
            if j < 0:
                return fail(unclosed_quote(src[i + 1 :], line))
            text = src[i:j]
            append(Token(SSTR if c == "'" else DSTR, text, text[1:-1].replace(c + c, c), i, j, line))
            line += text.count("\n")
            i = j
            continue
        if c == "[":
            k = i + 1
            while True:
                j = src.find("]", k)
                if j < 0 or not src.startswith("]", j + 1):
                    break
                k = j + 2
            nl = src.find("\n", i, j) if j >= 0 else -1
            if j < 0 or nl >= 0:
                # not a bracketed name: a lone '[' is an operator the parser will refuse
                append(Token(OP, "[", "[", i, i + 1, line))
                i += 1
                continue
            text = src[i : j + 1]
            append(Token(BRACKET, text, text[1:-1].replace("]]", "]"), i, j + 1, line))
            i = j + 1
            continue
        if c == "@":
            m = _VAR.match(src, i)
            if m:
                text = m.group()
                append(Token(GVAR if text.startswith("@@") else VAR, text, text, i, m.end(), line))
                i = m.end()
                continue
            append(Token(OP, c, c, i, i + 1, line))
            i += 1
            continue
        if c.isdigit() or (c == "." and src[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(src, i)
            if m and m.end() > i:
                append(Token(NUM, m.group(), m.group(), i, m.end(), line))
                i = m.end()
                continue
        if shell and (c == "$" or c == "`"):
            j = _shell_word_end(src, i)
            if j > i:
                text = src[i:j]
                append(Token(SHELL, text, text, i, j, line))
                i = j
                continue
        m = _WORD.match(src, i)
        if m:
            j = m.end()
            kind = WORD
            if shell:
                k = _shell_word_end(src, i)
                if k > i and ("$" in src[i:k] or "`" in src[i:k]):
                    j, kind = k, SHELL
            text = src[i:j]
            append(Token(kind, text, text, i, j, line))
            i = j
            continue
        two = src[i : i + 2]
        if two in _TWO_CHAR_OPS:
            append(Token(OP, two, two, i, i + 2, line))
            i += 2
            continue
        append(Token(OP, c, c, i, i + 1, line))
        i += 1
    return _indexed(tokens), None


def _indexed(tokens: list[Token]) -> list[Token]:
    for k, tok in enumerate(tokens):
        tok.index = k
    return tokens


def _shell_word_end(src: str, i: int) -> int:
    """End of a word made of identifier characters and shell expansions, starting at ``i``."""
    n = len(src)
    j = i
    while j < n:
        c = src[j]
        if c == "$" or c == "`":
            k = _shell_piece_end(src, j)
            if k < 0:
                break
            j = k
        elif c.isalnum() or c in "_#@":
            j += 1
        else:
            break
    return j
