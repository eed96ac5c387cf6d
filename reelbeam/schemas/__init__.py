"""Table schemas (the contract with users) and in-flight record types."""

from reelbeam.schemas.records import Failure, VideoRef
from reelbeam.schemas.tables import SCHEMA_VERSION, TABLES, schema_for

__all__ = ["SCHEMA_VERSION", "TABLES", "Failure", "VideoRef", "schema_for"]
