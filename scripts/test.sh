#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian packages for the real SSH test
# hosts), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
exec "${PYTHON:-python3}" -m pytest -q "$@"
