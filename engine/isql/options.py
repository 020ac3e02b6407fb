"""isql's command line, the way SAP's isql reads it.

Flags may be glued to their values or spaced from them (``-Usa``, ``-U sa``,
``-w250``, ``-w 250``); value-less flags may be grouped (``-be``). isql takes
no positional arguments, so an optional value (``-J``, ``-Z``, ``-V``) is the
next argument when that one does not start with ``-``.

``-P`` is special, as in SAP isql: ``-P`` last on the line, ``-P ''``, or
``-P`` followed by another option (``-P -SSYBAR``, what ``-P$PW`` becomes when
``$PW`` is empty) all mean an empty password. A password starting with ``-``
must be glued: ``-P-secret``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

USAGE = """\
usage: sybar-isql [-b] [-e] [-n] [-v] [-X] [-Y] [-F] [-p] [-Q]
        [-U login] [-P password] [-S server] [-D database]
        [-i inputfile] [-o outputfile] [-I interfacesfile] [-y sybase_dir]
        [-w columnwidth] [-s colseparator] [-c cmdend] [-h headers]
        [-H hostname] [-A packetsize] [-t timeout] [-l logintimeout]
        [-J [charset]] [-z language] [-a display_charset] [-m errorlevel]
        [-E editor] [-K keytab] [-R principal] [-V [options]] [-Z [mechanism]]
        [--retserverror] [--appname name] [--conceal [prompt]] [--home DIR] [--help]

Without -P the password comes from the OS keyring (`sybar password set SERVER USER`),
else from a no-echo prompt when standard input is a terminal."""


class UsageError(Exception):
    """The command line cannot be understood; str() says why."""


@dataclass
class Options:
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    server: str | None = None
    database: str | None = None
    input_file: str | None = None
    output_file: str | None = None
    width: int = 80
    headers: bool = True
    echo: bool = False
    no_prompt: bool = False
    interfaces: str | None = None
    sybase_dir: str | None = None
    home: str | None = None
    hostname: str | None = None
    colsep: str = " "
    cmdend: str = "go"
    charset: str | None = None
    language: str | None = None
    packet_size: int | None = None
    timeout: float | None = None
    login_timeout: float | None = None
    appname: str = "sybar-isql"
    retserverror: bool = False
    version: bool = False
    help: bool = False
    tolerated: list[str] = field(default_factory=list)  # accepted options with no effect here

    def resolved_server(self, env: dict[str, str] | None = None) -> str:
        """-S, else $DSQUERY (as Sybase clients do), else SYBAR (sybar's dataserver)."""
        env = os.environ if env is None else env
        return self.server or env.get("DSQUERY") or "SYBAR"

    def resolved_user(self) -> str:
        """-U, else the operating-system login name (as SAP isql does)."""
        if self.user:
            return self.user
        import getpass

        try:
            return getpass.getuser()
        except Exception:
            return "sa"


# letter -> (attribute, kind); kind: flag | value | optional
_SHORT: dict[str, tuple[str, str]] = {
    "b": ("headers", "flag"),
    "e": ("echo", "flag"),
    "n": ("no_prompt", "flag"),
    "v": ("version", "flag"),
    "X": ("-X", "flag"),
    "Y": ("-Y", "flag"),
    "F": ("-F", "flag"),
    "p": ("-p", "flag"),
    "Q": ("-Q", "flag"),
    "W": ("-W", "flag"),
    "U": ("user", "value"),
    "P": ("password", "value"),
    "S": ("server", "value"),
    "D": ("database", "value"),
    "i": ("input_file", "value"),
    "o": ("output_file", "value"),
    "w": ("width", "value"),
    "s": ("colsep", "value"),
    "c": ("cmdend", "value"),
    "I": ("interfaces", "value"),
    "y": ("sybase_dir", "value"),
    "H": ("hostname", "value"),
    "A": ("packet_size", "value"),
    "t": ("timeout", "value"),
    "l": ("login_timeout", "value"),
    "z": ("language", "value"),
    "J": ("charset", "optional"),
    "a": ("-a", "value"),
    "h": ("-h", "value"),
    "m": ("-m", "value"),
    "E": ("-E", "value"),
    "K": ("-K", "value"),
    "R": ("-R", "value"),
    "x": ("-x", "value"),
    "V": ("-V", "optional"),
    "Z": ("-Z", "optional"),
}

# --name -> (attribute, kind)
_LONG: dict[str, tuple[str, str]] = {
    "retserverror": ("retserverror", "flag"),
    "help": ("help", "flag"),
    "version": ("version", "flag"),
    "appname": ("appname", "value"),
    "home": ("home", "value"),
    "conceal": ("--conceal", "optional"),
    "URP": ("--URP", "value"),
    "history": ("--history", "optional"),
}


def _number(opt: str, text: str, *, minimum: float, integer: bool) -> float | int:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise UsageError(f"option {opt} needs {kind}, not {text!r}") from None
    if value < minimum:
        raise UsageError(f"option {opt} must be at least {minimum:g}, not {text!r}")
    return value


def _store(opts: Options, opt: str, attr: str, value: str | None) -> None:
    if attr.startswith("-"):
        opts.tolerated.append(attr)
        return
    if attr == "headers":
        opts.headers = False
    elif attr in ("echo", "no_prompt", "version", "retserverror", "help"):
        setattr(opts, attr, True)
    elif attr == "width":
        opts.width = int(_number(opt, value or "", minimum=1, integer=True))
    elif attr == "packet_size":
        opts.packet_size = int(_number(opt, value or "", minimum=512, integer=True))
    elif attr in ("timeout", "login_timeout"):
        secs = float(_number(opt, value or "", minimum=0, integer=False))
        setattr(opts, attr, secs or None)  # 0 means no timeout, as in isql
    elif attr == "colsep":
        opts.colsep = value if value else " "
    elif attr == "cmdend":
        if not value or not value.strip():
            raise UsageError("option -c needs a command terminator, for example -c go")
        opts.cmdend = value.strip()
    else:
        setattr(opts, attr, value)


def parse_args(argv: list[str]) -> Options:
    """Read an isql command line; UsageError when it cannot be understood."""
    opts = Options()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, glued = arg[2:].partition("=")
            spec = _LONG.get(name) or _LONG.get(name.lower())
            if spec is None:
                raise UsageError(f"unknown option --{name}")
            attr, kind = spec
            value: str | None = None
            if kind == "flag":
                if eq:
                    raise UsageError(f"option --{name} takes no value")
            elif eq:
                value = glued
            elif kind == "value":
                if i >= len(args):
                    raise UsageError(f"option --{name} needs a value")
                value = args[i]
                i += 1
            elif i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            _store(opts, f"--{name}", attr, value)
            continue
        if arg == "-?":
            opts.help = True
            continue
        if not arg.startswith("-") or arg == "-":
            raise UsageError(f"unexpected argument {arg!r}: isql reads SQL from -i FILE or standard input")
        j = 1
        while j < len(arg):
            letter = arg[j]
            spec = _SHORT.get(letter)
            if spec is None:
                raise UsageError(f"unknown option -{letter}")
            attr, kind = spec
            rest = arg[j + 1:]
            if kind == "flag":
                _store(opts, f"-{letter}", attr, None)
                j += 1
                continue
            # value or optional: the value is the rest of this argument, or the next one
            if rest:
                value = rest
            elif letter == "P":
                if i < len(args) and not (args[i].startswith("-") and len(args[i]) > 1):
                    value = args[i]
                    i += 1
                else:
                    value = ""  # -P alone: the empty password
            elif kind == "value":
                if i >= len(args):
                    raise UsageError(f"option -{letter} needs a value")
                value = args[i]
                i += 1
            elif i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            else:
                value = None
            _store(opts, f"-{letter}", attr, value)
            break
    return opts
