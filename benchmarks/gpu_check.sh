#!/usr/bin/env bash
# The device checks, as one script for a lent GPU machine (see README):
# the seed-batching benchmark on the GPU, the paper preset of the Section 4
# width sweep (S4c-S4e) within a time budget, and the theory checks' paper
# preset within what is left. Results are packed into $OUT.
#   bash benchmarks/gpu_check.sh [S4_BUDGET_S] [THEORY_BUDGET_S]
set -uo pipefail
S4_BUDGET=${1:-240}
THEORY_BUDGET=${2:-90}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
start=$(date +%s)
python3 benchmarks/seeds.py --widths 16 64 256 --repeats 3 \
  --json "$OUT/seeds_gpu.json" 2>&1 | tee "$OUT/seeds_gpu.txt"
echo "seeds benchmark: $(( $(date +%s) - start )) s"
start=$(date +%s)
RANDCONV_TIME_BUDGET_S=$S4_BUDGET python3 -m randconv.cli reproduce \
  --preset paper --only S4c S4d S4e --out /tmp/s4paper 2>&1 \
  | grep -v "it/s\]$" | tail -40 | tee "$OUT/s4paper.txt"
echo "S4 paper preset: $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout "$THEORY_BUDGET" python3 -m randconv.cli theory --preset paper \
  --out /tmp/theory_paper --json > "$OUT/theory_paper.json" 2> "$OUT/theory_paper.err"
echo "theory paper preset: rc $? after $(( $(date +%s) - start )) s"
tail -5 "$OUT/theory_paper.err"
tar czf "$OUT/results.tgz" -C /tmp s4paper theory_paper 2>/dev/null
ls -la "$OUT"
