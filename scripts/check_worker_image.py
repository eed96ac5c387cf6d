"""Run while building the worker image (Dockerfile): the base must have the Python minor version of
Beam's boot image and a CUDA build of the torch that setup.py pins.

    python scripts/check_worker_image.py 3.11
"""

import re
import sys
from pathlib import Path


def main(python_version: str) -> int:
    import torch

    pinned = re.search(r'"torch==([^"]+)"', Path(__file__).resolve().parents[1].joinpath("setup.py").read_text()).group(1)
    problems = []
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != python_version:
        problems.append(f"the base image has Python {sys.version.split()[0]}; Beam's boot image is for {python_version}")
    if torch.__version__.split("+")[0] != pinned:
        problems.append(f"the base image has torch {torch.__version__}; setup.py pins {pinned}")
    if not torch.version.cuda:
        problems.append("the base image's torch is a CPU build (use a CUDA PyTorch image as TORCH_IMAGE)")
    for p in problems:
        print(f"check_worker_image: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "3.11"))
