"""The embedded dataserver's transaction log: ``dump transaction`` / ``load transaction``.

A logical redo log inside each user database (see translog_capture for how
changes are captured, translog_chain for log dumps and loads). This module is
the one to import; it gathers the API.
"""

from __future__ import annotations

from engine.dataserver.translog_capture import (
    LOG_TABLE,
    META_TABLE,
    NO_FULL_DUMP,
    PENDING,
    LogWriter,
    ensure_capture,
    flush_pending,
    is_temp_ddl,
    prepare_connection,
)
from engine.dataserver.translog_chain import (
    LOADED_ONLINE,
    UNTIL_FORMS,
    ApplyResult,
    LogExtract,
    apply_log,
    extract_log,
    full_dump_done,
    full_dump_point,
    loaded_full_dump,
    log_state,
    online,
    parse_until_time,
    read_extract,
    truncate_log,
    truncate_only,
)

__all__ = [
    "LOG_TABLE", "META_TABLE", "NO_FULL_DUMP", "PENDING", "LOADED_ONLINE", "UNTIL_FORMS",
    "ApplyResult", "LogExtract", "LogWriter",
    "apply_log", "ensure_capture", "extract_log", "flush_pending", "full_dump_done", "full_dump_point",
    "is_temp_ddl", "loaded_full_dump", "log_state", "online", "parse_until_time", "prepare_connection", "read_extract",
    "truncate_log", "truncate_only",
]
