"""A tiny Section 4 width sweep as one process of a job (the multi-process
test of tests/test_distributed.py): ``python distributed_sweep.py OUT
[launch flags]``."""

import argparse
import json
import sys

from randconv import distributed
from randconv.deadline import NO_DEADLINE
from randconv.repro import launch

# The sweep: width 4, three nets (more than fit evenly on the job's two
# sweep devices, one CPU device per process), two images, no T7
# predictions.
FIELDS = dict(size=16, widths=(4,), nets=3, images=2, fig10_images=1,
              fig10_widths=(4,), sensitivity_size=None, t7=False)


def run(out: str):
  from experiments.section4 import claims, configs
  cfg = configs.config_for(configs.WidthConfig, "quick", **FIELDS)
  return claims.run_width_sweep(cfg, out, NO_DEADLINE)


if __name__ == "__main__":
  p = argparse.ArgumentParser()
  p.add_argument("out")
  launch.add_arguments(p)
  a = p.parse_args()
  launch.initialize(launch.launch_from_args(a))
  from randconv.training.train import enable_compilation_cache
  enable_compilation_cache()  # $RANDCONV_JAX_CACHE: shared by the test's runs
  results = run(a.out)
  if distributed.is_main():
    print(json.dumps([r.status for r in results]))
  sys.exit(launch.finish(0))
