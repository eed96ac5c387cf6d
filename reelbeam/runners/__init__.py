"""Runner adapters (see dask.py)."""
