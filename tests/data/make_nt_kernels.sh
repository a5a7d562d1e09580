#!/usr/bin/env bash
# Rebuilds tests/data/nt_kernels.npz with neural-tangents in a venv of its
# own (it pins jax 0.4.x and pulls in TensorFlow, so it cannot share the
# project's): bash tests/data/make_nt_kernels.sh [VENV_DIR]
# benchmarks/kernels.py uses the same venv (NT_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:-${NT_VENV:-.nt-venv}}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "neural-tangents==0.6.5" "jax[cpu]==0.4.30"
fi
TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" tests/data/make_nt_kernels.py \
  --out tests/data/nt_kernels.npz
