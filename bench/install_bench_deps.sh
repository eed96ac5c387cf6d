#!/usr/bin/env bash
# Extra packages the benchmarks compare against. PySceneDetect asks for opencv-python, which would
# clash with reelbeam's opencv-python-headless (both provide cv2), so it is installed without deps.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install --quiet --no-deps 'scenedetect>=0.6.4' && .venv/bin/python -m pip install --quiet platformdirs click tqdm
