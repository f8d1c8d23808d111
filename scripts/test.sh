#!/usr/bin/env bash
# Install AuthFace with its test tools into .venv (CPU torch) and run the offline test suite.
#   bash scripts/test.sh              # whole suite
#   bash scripts/test.sh -k cli       # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# constraints/cpu.txt pins the CPU build of torch so pip never pulls the multi-GB CUDA wheels here.
python -m pip install --quiet -c constraints/cpu.txt -e ".[dev]"
export HF_HUB_OFFLINE=1
python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
