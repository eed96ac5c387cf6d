#!/usr/bin/env bash
# Run the whole test suite (creates/updates .venv as needed): ruff, then pytest. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
ensure_venv
# The report's browser test needs Debian's Chromium; install it when missing, and make the test
# fail rather than skip without it.
scripts/ensure_chromium.sh >/dev/null
export REELBEAM_BROWSER_TEST=required
.venv/bin/ruff check reelbeam tests bench
exec .venv/bin/python -m pytest "$@"
