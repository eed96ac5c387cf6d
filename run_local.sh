#!/usr/bin/env bash
# Run reelbeam on the bundled sample with Beam's DirectRunner, offline, then write its HTML report.
# Usage: ./run_local.sh [reelbeam run options...]   (defaults: the sample in, ./output out)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
ensure_venv

OUT=""
if [ $# -eq 0 ]; then
  OUT=output
  set -- --input samples/sintel_trailer_30s.mp4 --output "$OUT" --overwrite --shot-keyframes
fi
# The DirectRunner's layout follows the input (docs/runners.md): one video runs in this process,
# several run on one worker process per core.
.venv/bin/reelbeam run \
  --default_sdk_harness_log_level=WARNING \
  --sdk_harness_log_level_overrides='{"apache_beam.options.pipeline_options": "ERROR", "apache_beam.runners.worker.sdk_worker_main": "ERROR", "apache_beam.io.filebasedsink": "ERROR"}' \
  "$@"
if [ -n "$OUT" ]; then
  .venv/bin/reelbeam report "$OUT"
fi
