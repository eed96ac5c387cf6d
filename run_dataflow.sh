#!/usr/bin/env bash
# Launch reelbeam on Google Cloud Dataflow. `./run_dataflow.sh --help` explains every flag;
# docs/dataflow.md walks through the image, the permissions and a first GPU job.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'EOF'
Usage: ./run_dataflow.sh --project P --region R --bucket B --image IMAGE [options] -- REELBEAM_FLAGS

Runs `reelbeam run` with Dataflow's runner from this machine (the launcher: any machine with
gcloud credentials, no GPU needed). Everything after `--` goes to `reelbeam run`: at least
--input and --output (gs:// URLs), plus stage flags such as --scene-checkpoint gs://.../pytorch_model.pt.

Where the job runs
  --project P            Google Cloud project that runs and pays for the job.
  --region R             Dataflow region (e.g. us-central1); pick one that offers your GPU type.
  --bucket B             bucket for Dataflow's temp and staging files (gs://B/reelbeam/tmp, .../staging).
  --temp-location URL    instead of --bucket: Dataflow's temp files.
  --staging-location URL instead of --bucket: the staged package (default: the temp location).
  --service-account SA   worker service account (needs read on the inputs and checkpoints, write on
                         the output; default: the Compute Engine default account).
  --network N, --subnetwork S
                         VPC for the workers (Dataflow's --network / --subnetwork).
  --no-public-ips        workers without public IPs (needs Private Google Access on the subnetwork).

Workers
  --image IMAGE          worker container (the repository's Dockerfile, built and pushed to Artifact
                         Registry): Beam's SDK harness, CUDA torch, reelbeam and its pinned requirements.
  --machine-type T       CPU workers (decode pass, keyframes, writers) (default: n2-standard-8).
  --disk-size-gb N       boot disk per worker; the image is ~10 GB (default: 100).
  --num-workers N        workers at start (default: Dataflow's).
  --max-workers N        autoscaling ceiling (default: 20).
  --gpu TYPE[:COUNT]     attach GPUs to the model steps only (TransNetV2, scene grouping's
                         EfficientNet, shot encoders, CRN, CLIP, CMD), e.g. nvidia-l4 or nvidia-tesla-t4. Dataflow's right fitting then runs
                         those steps on GPU workers and everything else on the CPU workers above;
                         the model steps ask for CUDA and fail on a worker without it (default: none,
                         every step on CPU workers).
  --gpu-machine-type T   machine type of the GPU workers (default: g2-standard-8 for nvidia-l4,
                         n1-standard-8 for other types).
  --model-copies N       model copies per GPU worker (default: 1; each copy holds its weights in GPU memory).

Other
  --dry-run              build the job graph on this machine and print it; submit nothing.
  --job-name NAME        Dataflow job name (default: reelbeam-<user>-<time>).
  -h, --help             this help.

Fixed: --runner DataflowRunner, --experiments use_runner_v2 (GPUs and custom containers need Runner
v2), --sdk_location container (Beam comes from the image), --setup_file ./setup.py (this checkout's
code is staged beside the image's copy, so a job runs the launcher's version), and
--sdk_container_image from --image.
Needs: pip install '.[gcp]' on the launcher (done here into .venv), `gcloud auth application-default login`.

Example:
  ./run_dataflow.sh --project my-project --region us-central1 --bucket my-bucket \
    --image us-central1-docker.pkg.dev/my-project/reelbeam/worker:0.1.0 --gpu nvidia-l4 -- \
    --input 'gs://my-bucket/videos/*.mp4' --output gs://my-bucket/tables \
    --scene-checkpoint gs://my-bucket/models/bassl/pytorch_model.pt
EOF
}

die() { echo "run_dataflow.sh: $*" >&2; echo "see ./run_dataflow.sh --help" >&2; exit 2; }

PROJECT="" REGION="" BUCKET="" TEMP="" STAGING="" IMAGE="" SA="" NETWORK="" SUBNETWORK="" NO_PUBLIC_IPS=""
MACHINE_TYPE="n2-standard-8" DISK_GB="100" NUM_WORKERS="" MAX_WORKERS="20" GPU="" GPU_MACHINE="" COPIES="1"
DRY_RUN="" JOB_NAME=""
need() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --project) need "$@"; PROJECT=$2; shift 2 ;;
    --region) need "$@"; REGION=$2; shift 2 ;;
    --bucket) need "$@"; BUCKET=${2#gs://}; BUCKET=${BUCKET%/}; shift 2 ;;
    --temp-location) need "$@"; TEMP=$2; shift 2 ;;
    --staging-location) need "$@"; STAGING=$2; shift 2 ;;
    --service-account) need "$@"; SA=$2; shift 2 ;;
    --network) need "$@"; NETWORK=$2; shift 2 ;;
    --subnetwork) need "$@"; SUBNETWORK=$2; shift 2 ;;
    --no-public-ips) NO_PUBLIC_IPS=1; shift ;;
    --image) need "$@"; IMAGE=$2; shift 2 ;;
    --machine-type) need "$@"; MACHINE_TYPE=$2; shift 2 ;;
    --disk-size-gb) need "$@"; DISK_GB=$2; shift 2 ;;
    --num-workers) need "$@"; NUM_WORKERS=$2; shift 2 ;;
    --max-workers) need "$@"; MAX_WORKERS=$2; shift 2 ;;
    --gpu) need "$@"; GPU=$2; shift 2 ;;
    --gpu-machine-type) need "$@"; GPU_MACHINE=$2; shift 2 ;;
    --model-copies) need "$@"; COPIES=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --job-name) need "$@"; JOB_NAME=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown flag $1 (reelbeam's own flags go after --)" ;;
  esac
done

[ -n "$PROJECT" ] || die "--project is required"
[ -n "$REGION" ] || die "--region is required"
[ -n "$IMAGE" ] || die "--image is required: build and push the repository's Dockerfile (docs/dataflow.md)"
if [ -z "$TEMP" ]; then
  [ -n "$BUCKET" ] || die "--bucket (or --temp-location) is required"
  TEMP="gs://$BUCKET/reelbeam/tmp"
  STAGING=${STAGING:-"gs://$BUCKET/reelbeam/staging"}
fi
case "$TEMP" in gs://*) ;; *) die "--temp-location must be a gs:// URL, got $TEMP" ;; esac
for n in "$DISK_GB" "$MAX_WORKERS" "$COPIES" ${NUM_WORKERS:+"$NUM_WORKERS"}; do
  case "$n" in ''|*[!0-9]*|0) die "sizes and counts must be whole numbers >= 1, got '$n'" ;; esac
done
[ $# -gt 0 ] || die "give reelbeam's flags after --, at least --input and --output"

ARGS=(
  --runner=DataflowRunner --project="$PROJECT" --region="$REGION"
  --temp_location="$TEMP" --setup_file=./setup.py
  --sdk_container_image="$IMAGE" --sdk_location=container
  --experiments=use_runner_v2
  --machine_type="$MACHINE_TYPE" --disk_size_gb="$DISK_GB" --max_num_workers="$MAX_WORKERS"
  --model-copies="$COPIES"
)
[ -n "$STAGING" ] && ARGS+=(--staging_location="$STAGING")
[ -n "$NUM_WORKERS" ] && ARGS+=(--num_workers="$NUM_WORKERS")
[ -n "$SA" ] && ARGS+=(--service_account_email="$SA")
[ -n "$NETWORK" ] && ARGS+=(--network="$NETWORK")
[ -n "$SUBNETWORK" ] && ARGS+=(--subnetwork="$SUBNETWORK")
[ -n "$NO_PUBLIC_IPS" ] && ARGS+=(--no_use_public_ips)
[ -n "$JOB_NAME" ] && ARGS+=(--job_name="$JOB_NAME")
[ -n "$DRY_RUN" ] && ARGS+=(--dry_run=True)
if [ -n "$GPU" ]; then
  TYPE=${GPU%%:*}
  COUNT=1
  [ "$TYPE" != "$GPU" ] && COUNT=${GPU#*:}
  case "$TYPE" in nvidia-?*) ;; *) die "--gpu TYPE[:COUNT]: TYPE is an nvidia-* GPU type such as nvidia-l4, got '$GPU'" ;; esac
  case "$COUNT" in ''|*[!0-9]*|0) die "--gpu TYPE[:COUNT]: COUNT must be a whole number >= 1, got '$GPU'" ;; esac
  if [ -z "$GPU_MACHINE" ]; then
    case "$TYPE" in nvidia-l4) GPU_MACHINE=g2-standard-8 ;; *) GPU_MACHINE=n1-standard-8 ;; esac
  fi
  # Right fitting: the hint goes on the model steps only (not the worker_accelerator service option,
  # which would put GPUs on every worker).
  ARGS+=(--gpu-accelerator="type:$TYPE;count:$COUNT;machine_type:$GPU_MACHINE;install-nvidia-driver")
fi

source scripts/ensure_venv.sh
ensure_venv
.venv/bin/python -c "import google.cloud.storage, apache_beam.runners.dataflow" 2>/dev/null \
  || .venv/bin/python -m pip install --quiet -e '.[gcp]'
exec .venv/bin/reelbeam run "${ARGS[@]}" "$@"
