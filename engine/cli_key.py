"""``sybar key show | export | import``: the home's data key for encryption at rest.

The key lives in the OS keyring (engine.archive.keys). ``export`` writes it
for disaster recovery, to a new 0600 file or, only when asked with
``--stdout``, to standard output, with a warning on standard error; ``import``
reads such a file and makes its key the home's current key (older keys stay in
the keyring for the backups they encrypted); ``show`` prints the fingerprint
only. These commands run in the CLI process: the key never crosses the control
API.
"""

from __future__ import annotations

import os
import sys

from engine.home import Home
from engine.jobs.status import INVALID_PARAMETER, StatusError


def add_parser(sub, add_home) -> None:
    key = sub.add_parser("key", help="the home's data key (encryption at rest): show, export, import")
    key_sub = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = key_sub.add_parser("show", help="print the current key's fingerprint (never the key)")
    add_home(show)
    exp = key_sub.add_parser("export", help="write the key for disaster recovery (keep it offline!)")
    add_home(exp)
    where = exp.add_mutually_exclusive_group(required=True)
    where.add_argument("--file", metavar="FILE", help="a new file (mode 0600) to write the key to")
    where.add_argument("--stdout", action="store_true", help="print the key on standard output")
    imp = key_sub.add_parser("import", help="make the key in FILE (from `sybar key export`) this home's key")
    add_home(imp)
    imp.add_argument("--file", metavar="FILE", required=True)


def run(args) -> int:
    from engine.archive import keys  # here, not at import: building the parser must stay quick

    home = Home.resolve(args.home)
    root = home.root
    err = sys.stderr
    if args.action == "show":
        dk = keys.current(root)
        if dk is None:
            print(f"sybar key: the home {root} has no data key yet (it gets one with its first encrypted backup)")
            return 1
        print(f"data key {dk.id} (AES-256-GCM) of the home {root}")
        return 0
    if args.action == "export":
        dk = keys.current(root)
        if dk is None:
            raise keys.no_key_error(root)
        text = keys.export_text(dk, root)
        print(keys.EXPORT_WARNING, file=err)
        if args.stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
            return 0
        try:
            fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise StatusError(
                INVALID_PARAMETER, f"{args.file} exists: give a new file name (an export never overwrites)"
            ) from None
        except OSError as e:
            raise StatusError(INVALID_PARAMETER, f"cannot create {args.file}: {e.strerror}") from None
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        print(f"data key {dk.id} written to {args.file} (mode 0600)", file=err)
        return 0
    # import
    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read(1 << 16)
    except (OSError, UnicodeDecodeError) as e:
        raise StatusError(
            INVALID_PARAMETER, f"cannot read {args.file}: {getattr(e, 'strerror', None) or e}"
        ) from None
    dk = keys.install(root, keys.parse_export(text, args.file))
    print(f"data key {dk.id} imported: it is now the current key of the home {root}")
    return 0
