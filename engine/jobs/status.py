"""NetBackup status codes and the one exception type a DBA ever sees.

Every engine failure a user can meet is a StatusError: str(e) is the sentence
for the DBA (what is wrong, what to do) and .status the NetBackup number.
"""

from __future__ import annotations

SUCCESS = 0
PARTIAL = 1
BACKUP_FAILED = 6
INVALID_PARAMETER = 20
NETWORK_TIMEOUT = 41
CLIENT_ABORTED = 50
CONNECTION_REFUSED = 57
CANT_CONNECT = 58
MEDIA_WRITE_ERROR = 84
WORM_LOCK_ERROR = 88  # a WORM (immutable, indelible) image or object is locked until its unlock time
SYSTEM_ERROR = 130
TERMINATED_BY_ADMIN = 150
SNAPSHOT_ERROR = 156
MEDIA_MANAGER_ERROR = 174
BACKUP_WINDOW_CLOSED = 196
STORAGE_UNIT_UNAVAILABLE = 219
DATABASE_ERROR = 220
NO_ENTITY = 227
NO_SUCH_POLICY = 230
NO_SCHEDULE_OF_TYPE = 240
RESTORE_ERROR = 2850

MEANING = {
    SUCCESS: "the requested operation was successfully completed",
    PARTIAL: "the requested operation was partially successful",
    BACKUP_FAILED: "the backup failed to back up the requested files",
    INVALID_PARAMETER: "invalid command parameter",
    NETWORK_TIMEOUT: "network connection timed out",
    CLIENT_ABORTED: "client process aborted",
    CONNECTION_REFUSED: "client connection refused",
    CANT_CONNECT: "can't connect to client",
    MEDIA_WRITE_ERROR: "media write error",
    WORM_LOCK_ERROR: "OpenStorage WORM lock error",
    SYSTEM_ERROR: "system error occurred",
    TERMINATED_BY_ADMIN: "termination requested by administrator",
    SNAPSHOT_ERROR: "snapshot error encountered",
    MEDIA_MANAGER_ERROR: "media manager - system error occurred",
    BACKUP_WINDOW_CLOSED: "client backup was not attempted because backup window closed",
    STORAGE_UNIT_UNAVAILABLE: "the required storage unit is unavailable",
    DATABASE_ERROR: "database system error",
    NO_ENTITY: "no entity was found",
    NO_SUCH_POLICY: "the specified policy does not exist in the configuration database",
    NO_SCHEDULE_OF_TYPE: "no schedules of the correct type exist in this policy",
    RESTORE_ERROR: "restore error",
}


class StatusError(Exception):
    """A failure with a NetBackup status code and a sentence a DBA can act on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return self.args[0]
