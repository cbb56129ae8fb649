#!/usr/bin/env bash
# Install the harness and its Python dependencies into the current Python (3.11+).
# Idempotent: a second run installs nothing new.
#
#   bash scripts/bootstrap.sh            # the package and its runtime dependencies
#   bash scripts/bootstrap.sh --test     # plus what the test suite needs (system packages too)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TEST=0
for a in "$@"; do
    case "$a" in
        --test) TEST=1 ;;
        *) echo "bootstrap: unknown argument: $a" >&2; exit 2 ;;
    esac
done

pipi() { "$PY" -m pip install --disable-pip-version-check --root-user-action=ignore --progress-bar off -q "$@"; }

extras=""
[ "$TEST" = 1 ] && extras="[test]"
pipi -c constraints.txt -e ".${extras}"
# pnnx's wheel declares torch (gigabytes, with CUDA) only for its PyTorch export path; the ONNX
# converter binary inside it needs nothing, so it is installed without dependencies.
pipi -c constraints.txt --no-deps pnnx
# pyenv only exposes new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi

if [ "$TEST" = 1 ]; then
    # chromium renders the HTML report in a test (a screenshot that must not be blank)
    bash scripts/install-test-deps.sh --quiet --with-chromium
fi
"$PY" -c "import harness, MNN, ncnn, onnx, onnxruntime, ray, fabric, pyarrow" >/dev/null 2>&1 \
    || { echo "bootstrap: the installed packages do not import" >&2; exit 1; }
echo "bootstrap: ready ($("$PY" -c 'import harness; print("harness", harness.__version__)'))"
