# Sourced by run_local.sh and run_tests.sh: create .venv (Python 3.11 by default) and install
# reelbeam with its test extras when the installed copy is missing or older than setup.py.
ensure_venv() {
  local py="${PYTHON:-python3.11}"
  command -v "$py" >/dev/null 2>&1 || py=python3
  if [ ! -x .venv/bin/python ]; then
    echo "reelbeam: creating .venv with $py" >&2
    "$py" -m venv .venv
  fi
  local stamp=.venv/.reelbeam-installed
  if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ] || [ scripts/ensure_venv.sh -nt "$stamp" ]; then
    echo "reelbeam: installing dependencies into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch and torchvision are pinned in setup.py; pip takes them from the local wheel cache.
    # dask: the DaskRunner test; gcp: the offline Dataflow job test and run_dataflow.sh
    .venv/bin/python -m pip install --quiet -e ".[test,dask,gcp]"
    touch "$stamp"
  fi
}
