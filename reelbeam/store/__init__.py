"""Where reelbeam's tables live: Delta Lake tables under OUTPUT/<table>/ (`reelbeam.store.tables`),
outputs of earlier versions (`reelbeam.store.legacy`), and the storage primitives under them:
conditional (compare-and-swap) writes and the output's single-writer lease."""

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
