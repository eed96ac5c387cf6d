"""reelbeam: an Apache Beam batch pipeline from video corpora to Parquet tables of shots, scenes
and embeddings.

`reelbeam.process(video, **options)` runs the pipeline in this process and returns ModelScope-style
results; `reelbeam.read(OUTPUT, table)` reads a table as a pyarrow Table. Names below are imported on first
use, so `import reelbeam` stays cheap (no Beam, no torch).
"""

__version__ = "0.1.0"

# public name -> module that defines it, imported on first access
_LAZY = {
    "read": "reelbeam.api",
    "dataset": "reelbeam.api",
    "TableNotFound": "reelbeam.api",
    "process": "reelbeam.processing",
    "ProcessingError": "reelbeam.processing",
    "ConfigError": "reelbeam.stages.base",
}

__all__ = ["ConfigError", "ProcessingError", "TableNotFound", "__version__", "dataset", "process", "read"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reelbeam' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
