"""Storage units: where the media server keeps backup objects (one per stripe).

``StorageUnit`` is the interface (DESIGN.md §9); ``DiskStorageUnit`` keeps
objects as files in a directory. An object-store unit implements the same
protocol.
"""

from engine.storage.base import (
    MAX_NAME,
    ObjectInfo,
    ObjectReader,
    ObjectWriter,
    StorageUnit,
    TemporaryInfo,
    validate_object_name,
    validate_prefix,
    validate_unit_name,
)
from engine.storage.disk import DiskObjectReader, DiskObjectWriter, DiskStorageUnit

__all__ = [
    "MAX_NAME",
    "DiskObjectReader",
    "DiskObjectWriter",
    "DiskStorageUnit",
    "ObjectInfo",
    "ObjectReader",
    "ObjectWriter",
    "StorageUnit",
    "TemporaryInfo",
    "validate_object_name",
    "validate_prefix",
    "validate_unit_name",
]
