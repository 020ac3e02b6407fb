"""The control API's credential: a random token in HOME/control.token (0600).

Every request carries it as ``Authorization: Bearer TOKEN``, also on
loopback: a local account that cannot read the home cannot drive backups.
"""

from __future__ import annotations

import hmac
import secrets

from engine.home import Home, write_private_file

TOKEN_FILE = "control.token"


def ensure_token(home: Home) -> str:
    path = home.root / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    write_private_file(path, token + "\n")
    return token


def read_token(home: Home) -> str | None:
    path = home.root / TOKEN_FILE
    try:
        return path.read_text().strip()
    except OSError:
        return None


def token_matches(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].encode(), token.encode())
