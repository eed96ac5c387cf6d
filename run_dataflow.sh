#!/usr/bin/env bash
# Run reelbeam on Dataflow with GPU workers.
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket ./run_dataflow.sh --input 'gs://my-bucket/videos/*' --output gs://my-bucket/tables
# Extra arguments go to `reelbeam run` (and through it to Beam).
set -euo pipefail
cd "$(dirname "$0")"
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}"
GPU_TYPE=${GPU_TYPE:-nvidia-tesla-t4}
MACHINE_TYPE=${MACHINE_TYPE:-n1-standard-8}
source scripts/ensure_venv.sh
ensure_venv
.venv/bin/python -m pip install --quiet '.[gcp]'
exec .venv/bin/reelbeam run \
  --runner=DataflowRunner --project="$PROJECT" --region="$REGION" \
  --temp_location="gs://$BUCKET/tmp" --staging_location="gs://$BUCKET/staging" \
  --setup_file=./setup.py --machine_type="$MACHINE_TYPE" \
  --dataflow_service_options="worker_accelerator=type:$GPU_TYPE;count:1;install-nvidia-driver" \
  --experiments=use_runner_v2 --device=cuda --model-copies=1 \
  "$@"
