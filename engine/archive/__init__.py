"""The ``sybackup::`` archive API's data path: stripes to and from the media server.

``MediaClient`` (blocking, used by the Backup Server's stripe threads) opens
one authenticated connection per stripe: ``store()`` gives an ArchiveSink
(StripeSink), ``fetch()`` an ArchiveSource (StripeSource). ``names`` builds
and parses NetBackup's stripe object names.
"""

from engine.archive.client import ArchiveSink, ArchiveSource, MediaClient, StoreResult
from engine.archive.names import ObjectName, object_name, parse_object_name

__all__ = [
    "ArchiveSink",
    "ArchiveSource",
    "MediaClient",
    "ObjectName",
    "StoreResult",
    "object_name",
    "parse_object_name",
]
