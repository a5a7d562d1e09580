#!/usr/bin/env bash
# The device checks, as one script for a lent GPU machine (see README). Each
# argument names a stage, run in the order given; each stage has a time cap.
#   seeds   the seed-batching benchmark on the GPU
#   memory  the Section 4 width sweep's chunk plans at 227x227, widths
#           256..2048, checked by XLA's memory analysis, and one net of
#           width 2048 on 50 images with the device's peak memory
#   s3a     the S3a paper hyperparameters (VGG Conv2-DeConv2, 227 crops of
#           the offline photos at short side 512 (enough crops for a batch),
#           batch 32, Adam 1e-4): training steps per second
#   s3cache the same on cached features (--feature-cache $S3_CACHE crops,
#           Section 3's path): steps/s beside s3a's
#   s4      the paper preset of S4c-S4e within $S4_BUDGET seconds
#   s4full  the whole paper preset of S4c-S4e (widths 4..2048, 227 px, 30
#           nets x 50 images, both variants: 600 cells) end to end, no
#           budget: wall time and peak device memory (goal: under 5 min on
#           one H200); the cap is $S4FULL_SECONDS
#   scaling benchmarks/scaling.py on the GPUs there (1, 2, 4 devices;
#           counts above the GPUs are skipped)
#   theory  the theory checks' paper preset within $THEORY_BUDGET seconds
#   bash benchmarks/gpu_check.sh memory s3a s4
# Results land in $OUT (results.tgz holds the run folders).
# The GPU image lacks some packages: carry them as py3.12 wheels in .whl
# (git-excluded; see the device tool's README): dm-pix, grain, array_record,
# dm-tree, tensorflow-datasets, immutabledict, simple-parsing,
# tensorflow-metadata, termcolor, toml, docstring_parser, promise (built
# with `pip wheel`), importlib_resources, portpicker.
set -uo pipefail
S4_BUDGET=${S4_BUDGET:-120}
S4FULL_SECONDS=${S4FULL_SECONDS:-420}
THEORY_BUDGET=${THEORY_BUDGET:-90}
S3A_SECONDS=${S3A_SECONDS:-100}
S3A_SIZE=${S3A_SIZE:-227}        # smaller for a smoke run on a CPU
S3_CACHE=${S3_CACHE:-2048}       # cached crops for s3cache (13 GB at 227)
MEMORY_ARGS=${MEMORY_ARGS:-}     # e.g. "--size 32 --widths 16 --nets 2"
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(seeds memory s3a s4 theory)
for stage in "${stages[@]}"; do
  start=$(date +%s)
  case $stage in
    seeds)
      timeout 200 python3 benchmarks/many_nets.py --widths 16 64 256 --repeats 3 \
        --json "$OUT/seeds_gpu.json" 2>&1 | tee "$OUT/seeds_gpu.txt" ;;
    memory)
      timeout 200 python3 benchmarks/memory_plan.py $MEMORY_ARGS 2>&1 \
        | grep -v "^WARNING" | tee "$OUT/memory_plan.txt" ;;
    s3a|s3cache)
      cache=0; [ "$stage" = s3cache ] && cache=$S3_CACHE
      rm -rf /tmp/${stage}_gpu
      timeout "$S3A_SECONDS" python3 -m randconv.repro.cli train --arch vgg16 \
        --layer conv2 --encoder random --size "$S3A_SIZE" --short-side $((S3A_SIZE * 512 / 227)) \
        --batch 32 --lr 1e-4 --steps 200000 --data photos --threads 8 \
        --log-every 20 --eval-every 1000000 --checkpoint-every 1000000 \
        --feature-cache $cache --out /tmp/${stage}_gpu 2>&1 \
        | grep -v "^WARNING" | tail -3 | tee "$OUT/${stage}_gpu.txt"
      python3 - /tmp/${stage}_gpu <<'EOF' | tee -a "$OUT/${stage}_gpu.txt"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
steps = [r for r in recs if "loss" in r and "event" not in r]
timed = [r for r in steps if "time" in r]
a, b = timed[len(timed) // 2], timed[-1]  # the second half: compiled, warm
print(f"{b['step'] + 1} steps in {b['time']:.1f} s (compile and cache "
      f"included); {(b['step'] - a['step']) / (b['time'] - a['time']):.2f} "
      f"steps/s over steps {a['step']}-{b['step']}; loss "
      f"{steps[0]['loss']:.1f} -> {b['loss']:.1f}")
EOF
      ;;
    s4)
      RANDCONV_TIME_BUDGET_S=$S4_BUDGET timeout $((S4_BUDGET + 120)) \
        python3 -m randconv.repro.cli reproduce --preset paper \
        --only S4c S4d S4e --out /tmp/s4paper 2>&1 \
        | grep -v "it/s\]$" | tail -40 | tee "$OUT/s4paper.txt" ;;
    s4full)
      rm -rf /tmp/s4full
      timeout "$S4FULL_SECONDS" python3 - <<'EOF' 2>&1 | grep -v "it/s\]$" \
        | tail -30 | tee "$OUT/s4full.txt"
import json, time
import jax
from randconv.repro.cli import main
t0 = time.time()
code = main(["reproduce", "--preset", "paper", "--only", "S4c", "S4d", "S4e",
             "--out", "/tmp/s4full"])
wall = time.time() - t0
stats = jax.devices()[0].memory_stats() or {}
print(json.dumps({"exit": code, "wall_s": round(wall, 1),
                  "peak_gib": round(stats.get("peak_bytes_in_use", 0)
                                    / 2**30, 2),
                  "device": jax.devices()[0].device_kind}))
EOF
      ;;
    scaling)
      timeout 300 python3 benchmarks/scaling.py --width 0 --size 227 \
        --batch 32 --steps 50 --sweep-width 256 --sweep-size 227 \
        --nets 8 --images 16 --json "$OUT/scaling.json" 2>&1 \
        | grep -v "^WARNING" | tee "$OUT/scaling.txt" ;;
    theory)
      timeout "$THEORY_BUDGET" python3 -m randconv.repro.cli theory --preset paper \
        --out /tmp/theory_paper --json > "$OUT/theory_paper.json" \
        2> "$OUT/theory_paper.err"
      tail -5 "$OUT/theory_paper.err" ;;
    *) echo "unknown stage $stage" ;;
  esac
  echo "== $stage: $(( $(date +%s) - start )) s"
done
tar czf "$OUT/results.tgz" -C /tmp s4paper s4full theory_paper s3a_gpu \
  s3cache_gpu \
  2>/dev/null
ls -la "$OUT"
