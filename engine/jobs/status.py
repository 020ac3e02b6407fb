"""NetBackup status codes and the one exception type a DBA ever sees.

Every engine failure a user can meet is a StatusError: str(e) is the sentence
for the DBA (what is wrong, what to do) and .status the NetBackup number.
"""

from __future__ import annotations

SUCCESS = 0
PARTIAL = 1
BACKUP_FAILED = 6
NETWORK_TIMEOUT = 41
CLIENT_ABORTED = 50
CONNECTION_REFUSED = 57
CANT_CONNECT = 58
MEDIA_WRITE_ERROR = 84
SYSTEM_ERROR = 130
TERMINATED_BY_ADMIN = 150
SNAPSHOT_ERROR = 156
MEDIA_MANAGER_ERROR = 174
RESTORE_ERROR = 2850

MEANING = {
    SUCCESS: "the requested operation was successfully completed",
    PARTIAL: "the requested operation was partially successful",
    BACKUP_FAILED: "the backup failed to back up the requested files",
    NETWORK_TIMEOUT: "network connection timed out",
    CLIENT_ABORTED: "client process aborted",
    CONNECTION_REFUSED: "client connection refused",
    CANT_CONNECT: "can't connect to client",
    MEDIA_WRITE_ERROR: "media write error",
    SYSTEM_ERROR: "system error occurred",
    TERMINATED_BY_ADMIN: "termination requested by administrator",
    SNAPSHOT_ERROR: "snapshot error encountered",
    MEDIA_MANAGER_ERROR: "media manager - system error occurred",
    RESTORE_ERROR: "restore error",
}


class StatusError(Exception):
    """A failure with a NetBackup status code and a sentence a DBA can act on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return self.args[0]
