#!/usr/bin/env bash
# Run the whole test suite (creates/updates .venv as needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
ensure_venv
exec .venv/bin/python -m pytest "$@"
