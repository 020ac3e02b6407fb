"""Backup Server: consistent snapshot, striped dump format, parallel dump and verified load.

The dataserver calls this API; there is no TDS and no T-SQL here.
"""

from engine.backupserver.devices import FileSink, FileSource, StripeSink, StripeSource, file_sinks
from engine.backupserver.dump import MAX_STRIPES, DumpProgress, DumpResult, StripeResult, dump_database
from engine.backupserver.dumpformat import (
    DumpFormatError,
    StripeDecoder,
    StripeEncoder,
    StripeHeader,
    read_header,
)
from engine.backupserver.load import LoadProgress, LoadResult, list_dump, load_database, verify_dump
from engine.backupserver.snapshot import Snapshot, consistent_snapshot

__all__ = [
    "MAX_STRIPES",
    "DumpFormatError",
    "DumpProgress",
    "DumpResult",
    "FileSink",
    "FileSource",
    "LoadProgress",
    "LoadResult",
    "Snapshot",
    "StripeDecoder",
    "StripeEncoder",
    "StripeHeader",
    "StripeResult",
    "StripeSink",
    "StripeSource",
    "consistent_snapshot",
    "dump_database",
    "file_sinks",
    "list_dump",
    "load_database",
    "read_header",
    "verify_dump",
]
