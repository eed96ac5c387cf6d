"""reelbeam: an Apache Beam batch pipeline from video corpora to Parquet tables of shots, scenes
and embeddings."""

__version__ = "0.1.0"
