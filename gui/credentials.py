"""File → Logins…: Sybase logins whose passwords live in the OS keyring (engine.secrets).

Keyring and TDS calls block, so they run in the loop's executor (a naive
secretstorage call on the Qt loop's thread can replace the current event loop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from engine import secrets
from engine.home import SERVER_NAME
from engine.jobs.status import SYSTEM_ERROR, StatusError
from gui.engine_link import EngineLink

KEYRING_HELP = (
    "sybar keeps passwords only in the OS keyring. Unlock your desktop's keyring (GNOME Keyring, KWallet) "
    "and try again; on a machine without a desktop session start sybar under `dbus-run-session` with "
    "`gnome-keyring-daemon --unlock --components=secrets` running in it."
)


@dataclass
class Outcome:
    ok: bool
    text: str


def try_login(home_root: str, server: str, user: str, password: str, timeout: float = 10.0) -> str:
    """Log in once through the home's interfaces file; the server's name and version, or raises."""
    from engine.isql.interfaces import resolve_server
    from engine.tds.client import Connection

    addr = resolve_server(server, home=home_root)
    with Connection.connect(addr.host, addr.port, user=user, password=password, server=server,
                            app="sybar-gui", timeout=timeout) as conn:
        version = ".".join(str(v) for v in conn.server_version) if conn.server_version else ""
        return f"{conn.server_name or server} at {addr.host}:{addr.port}" + (f", version {version}" if version
                                                                                else "")


class LoginsDialog(QDialog):
    def __init__(self, link: EngineLink, parent: QWidget | None = None, server: str | None = None,
                 user: str = "sa"):
        super().__init__(parent)
        self.link = link
        self.setWindowTitle("Logins")
        self.setAccessibleName("Sybase logins")
        self.server = QLineEdit(server or link.status.get("dataserver_name") or SERVER_NAME)
        self.server.setAccessibleName("Server")
        self.user = QLineEdit(user)
        self.user.setAccessibleName("User")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.message = QLabel("The password is stored in the OS keyring, never in a file or a script.")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Login status")
        form = QFormLayout()
        form.addRow("&Server:", self.server)
        form.addRow("&User:", self.user)
        form.addRow("&Password:", self.password)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.test_button = self.buttons.addButton("&Test connection", QDialogButtonBox.ButtonRole.ActionRole)
        self.test_button.setAccessibleName("Test connection")
        self.save_button = self.buttons.addButton("Sa&ve", QDialogButtonBox.ButtonRole.ApplyRole)
        self.save_button.setAccessibleName("Save password")
        self.buttons.rejected.connect(self.reject)
        self.test_button.clicked.connect(lambda: self._spawn(self.test_connection()))
        self.save_button.clicked.connect(lambda: self._spawn(self.save()))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.pending: asyncio.Future | None = None

    def _spawn(self, coro) -> None:
        self.pending = asyncio.ensure_future(coro)

    def _say(self, outcome: Outcome) -> Outcome:
        self.message.setText(outcome.text)
        return outcome

    async def _password(self) -> str | None:
        pw = self.password.text()
        if pw:
            return pw
        return await self.link.run_blocking(secrets.get_password, self.server.text().strip(),
                                            self.user.text().strip())

    async def test_connection(self) -> Outcome:
        server, user = self.server.text().strip(), self.user.text().strip()
        self.message.setText(f"Connecting to {server} as {user} …")
        try:
            pw = await self._password()
        except StatusError as e:
            return self._say(Outcome(False, f"{e}"))
        if pw is None:
            return self._say(Outcome(False, f"No password typed and none stored for {user} on {server}."))
        try:
            what = await self.link.run_blocking(try_login, str(self.link.home.root), server, user, pw)
        except Exception as e:  # ServerLookupError, LoginError, TDSClientError, OSError
            return self._say(Outcome(False, f"Connection failed: {e}"))
        return self._say(Outcome(True, f"Logged in to {what} as {user}."))

    async def save(self) -> Outcome:
        server, user, pw = self.server.text().strip(), self.user.text().strip(), self.password.text()
        if not pw:
            return self._say(Outcome(False, "Type the password to store first."))
        try:
            await self.link.run_blocking(secrets.set_password, server, user, pw)
        except StatusError as e:
            if e.status == SYSTEM_ERROR:
                return self._say(Outcome(False, f"Could not store the password: the OS keyring is missing or "
                                                f"locked. {KEYRING_HELP}\n\n({e})"))
            return self._say(Outcome(False, str(e)))
        self.password.clear()
        return self._say(Outcome(True, f"Password for {user} on {server} stored in the OS keyring "
                                       f"(service {secrets.service_name(server)!r})."))
