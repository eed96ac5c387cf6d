#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test when it is missing (CI machines start
# bare). Needs root or password-less sudo; apt-get runs non-interactively. Prints the browser's path.
# Usage: scripts/ensure_chromium.sh   (then REELBEAM_BROWSER_TEST=required makes the test mandatory)
set -euo pipefail
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "$CHROMIUM"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ensure_chromium: $CHROMIUM is missing and this user cannot install packages" >&2
    exit 1
  fi
fi
echo "ensure_chromium: installing chromium with apt-get (once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq chromium >&2
[ -x "$CHROMIUM" ] || { echo "ensure_chromium: install finished but $CHROMIUM is not there" >&2; exit 1; }
echo "$CHROMIUM"
