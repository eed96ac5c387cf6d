"""Storage primitives under the tables: conditional (compare-and-swap) writes and the output's lease."""

from reelbeam.store.lease import (
    LEASE_FILE,
    Lease,
    LeaseError,
    LeaseHeld,
    LeaseLost,
    OutputNotWritable,
    acquire,
    read_holder,
)

__all__ = ["LEASE_FILE", "Lease", "LeaseError", "LeaseHeld", "LeaseLost", "OutputNotWritable", "acquire",
           "read_holder"]
