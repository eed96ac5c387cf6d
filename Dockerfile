# Worker image for reelbeam on Dataflow (GPU and CPU workers alike) and on Flink/Spark with
# --environment_type DOCKER. docs/dataflow.md shows the build, the push and the launch.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/reelbeam-worker:$(git rev-parse --short HEAD) .
#
# The base is a CUDA build of the torch that setup.py pins; Beam's SDK harness (the container's
# entrypoint, /opt/apache/beam/boot) comes from the Beam image of the same Beam and Python
# versions as the launcher. Python, torch and Beam versions are checked while building, and the
# launcher must run the same Python minor version (3.11) and Beam version (2.77.x).

ARG BEAM_VERSION=2.77.0
ARG PYTHON_VERSION=3.11
ARG TORCH_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam

FROM ${TORCH_IMAGE}
ARG BEAM_VERSION
ARG PYTHON_VERSION

# Beam's boot binary starts the SDK worker harness that Dataflow (or the portable runner) talks to.
COPY --from=beam /opt/apache/beam /opt/apache/beam

# FFmpeg comes inside PyAV's wheels; glib is what opencv-python-headless still loads. The base
# image's distribution decides the version (a pin would break on every base image update).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /opt/reelbeam
COPY setup.py README.md ./
COPY reelbeam ./reelbeam

# The pinned requirements of setup.py (torch/torchvision pins match the base image's, so pip keeps
# its CUDA build), Beam's GCP IO, then a consistency check of the whole environment.
COPY scripts/check_worker_image.py ./scripts/
RUN python scripts/check_worker_image.py "${PYTHON_VERSION}"
# Versions are pinned in setup.py (hadolint cannot see them there).
# hadolint ignore=DL3013
RUN pip install ".[gcp]" "apache-beam[gcp]==${BEAM_VERSION}" \
    && pip check \
    && python -c "import apache_beam, reelbeam, torch, av; print('beam', apache_beam.__version__, 'reelbeam', reelbeam.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)"

# TransNetV2's weights ship in its wheel; other checkpoints are read from gs:// at run time.
ENTRYPOINT ["/opt/apache/beam/boot"]
