"""Progress (randconv.progress): the long stages of Section 4 and T7 show
a bar on stderr, nothing reaches stdout, a resumed stage with nothing left
to do shows none, and ``--json`` silences them all."""

from experiments.section4 import claims, configs
from randconv import progress
from randconv.deadline import NO_DEADLINE
from randconv.repro.cli import main


def _kernel_sweep(out):
  cfg = configs.config_for(configs.KernelConfig, "quick", size=16,
                           kernels=(1, 3), nets=2, images=2)
  return claims.run_kernel_sweep(cfg, out, NO_DEADLINE)


def test_section4_cells_show_a_bar_per_stage_unless_quiet(tmp_path, capfd):
  _kernel_sweep(tmp_path / "shown")
  out, err = capfd.readouterr()
  assert out == ""
  assert "kernel_sweep k1" in err and "kernel_sweep k3" in err
  assert "net" in err
  _kernel_sweep(tmp_path / "shown")  # resumed: every cell is logged
  out, err = capfd.readouterr()
  assert "kernel_sweep k" not in err
  with progress.quieted():
    _kernel_sweep(tmp_path / "quiet")
  out, err = capfd.readouterr()
  assert out == "" and err == ""


def test_t7_sweep_shows_its_widths(capfd):
  """T7's width sweep (here every width already logged: no compute)."""
  from theory_checks import t7
  p = t7.config_for("quick", sweep_widths=(4, 16), dist_width=16)

  class Logged:
    def find(self, **key):
      return {"ssim": [[0.5]], "pearson": [[0.1]]}

  res = t7._sweep(p, None, Logged())
  assert sorted(res["conv"]) == [4, 16] and sorted(res["mean"]) == [4, 16]
  _, err = capfd.readouterr()
  assert "T7 sweep:" in err and "/2 " in err and "width" in err


def test_json_silences_progress(tmp_path, capfd):
  argv = ["invert", "chelsea", "--seeds", "3", "--size", "32", "--layer",
          "conv1", "--out"]
  assert main([*argv, str(tmp_path / "a")]) == 0
  out, err = capfd.readouterr()
  assert "invert" in err and "net-img" in err and "net-img" not in out
  assert main([*argv, str(tmp_path / "b"), "--json"]) == 0
  out, err = capfd.readouterr()
  assert err == "" and out.startswith("{") and out.count("\n") == 1
  assert not progress.quiet()  # the command's quiet ended with it
