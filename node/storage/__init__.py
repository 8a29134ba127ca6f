"""The node's persistent state: members, consent history, readings and per-profile totals."""

from coopfed.node.storage.base import (
    AlreadyExists,
    ConsentChanged,
    ConsentRecord,
    InvalidData,
    Member,
    MemberErased,
    NotFound,
    PeriodTotals,
    ProfileInfo,
    PutResult,
    ReadingBatch,
    SchemaError,
    SchemaTooNew,
    StorageBusy,
    StorageError,
    Store,
    describe_changes,
)
from coopfed.node.storage.sqlite import SqliteStore

__all__ = [
    "AlreadyExists",
    "ConsentChanged",
    "ConsentRecord",
    "InvalidData",
    "Member",
    "MemberErased",
    "NotFound",
    "PeriodTotals",
    "ProfileInfo",
    "PutResult",
    "ReadingBatch",
    "SchemaError",
    "SchemaTooNew",
    "SqliteStore",
    "StorageBusy",
    "StorageError",
    "Store",
    "describe_changes",
]
