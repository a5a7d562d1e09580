"""The CLI: describe against the paper's Table 1, invert end to end, and one
clear line with exit code 2 for every kind of bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from randconv.cli import main

# The paper's Table 1 (VGG16 at 227x227): channels, map side, dimension.
TABLE1 = {1: (64, 227, 3_297_856), 2: (128, 114, 1_663_488),
          3: (256, 57, 831_744), 4: (512, 29, 430_592), 5: (512, 15, 115_200)}


def run_json(capsys, *argv):
  assert main([*argv, "--json"]) == 0
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("k", range(1, 6))
def test_describe_vgg16_gives_table1(capsys, k):
  d = run_json(capsys, "describe", "--arch", "vgg16", "--layer", f"conv{k}",
               "--size", "227")
  channels, side, dim = TABLE1[k]
  assert d["feature"]["shape"] == [side, side, channels]
  assert d["feature"]["dimension"] == dim
  assert d["encoder"][-1]["name"] == f"conv{k}_{2 if k < 3 else 3}"
  assert (d["decoder"][-1]["height"], d["decoder"][-1]["width"]) == (227, 227)
  assert d["decoder"][-1]["channels"] == 3
  assert set(d["encoder"][0]) == {"name", "kind", "channels", "height",
                                  "width"}


@pytest.mark.parametrize("arch,size,maps,channels", [
    ("alexnet", 227, [55, 27, 13, 13, 13], [96, 256, 384, 384, 256]),
    ("alexnet_torchvision", 227, [56, 27, 13, 13, 13],
     [64, 192, 384, 256, 256]),
    ("alexnet_torchvision", 224, [55, 27, 13, 13, 13],
     [64, 192, 384, 256, 256]),
])
def test_describe_alexnets(capsys, arch, size, maps, channels):
  for k in range(1, 6):
    d = run_json(capsys, "describe", "--arch", arch, "--layer", f"conv{k}",
                 "--size", str(size))
    assert d["feature"]["shape"] == [maps[k - 1], maps[k - 1], channels[k - 1]]
    assert d["decoder"][-1]["height"] == size
    assert d["decoder"][-1]["width"] == size


def test_describe_variants(capsys):
  d = run_json(capsys, "describe", "--layer", "conv2", "--width", "32",
               "--output", "mean", "--size", "64")
  assert d["feature"]["shape"] == [32, 32, 32]
  assert d["decoder"][-1]["channels"] == 1
  assert [s["kind"] for s in d["decoder"]] == [
      "conv", "conv", "unpool", "conv", "mean", "crop"]
  d = run_json(capsys, "describe", "--layer", "conv3", "--simplified",
               "--size", "227")
  assert d["feature"]["dimension"] == TABLE1[3][2]
  assert sum(s["kind"] == "conv" for s in d["encoder"]) == 1


def test_invert_writes_images_and_metrics(capsys, tmp_path):
  d = run_json(capsys, "invert", "chelsea", "coffee", "--layer", "conv1_1",
               "--width", "8", "--seeds", "2", "--size", "32", "--out",
               str(tmp_path))
  ssim = np.array(d["ssim"])
  assert ssim.shape == (2, 2) and np.all((ssim >= 0) & (ssim <= 1))
  assert np.array(d["pearson"]).shape == (2, 2)
  per_seed = ssim.mean(axis=1)
  assert d["ssim_mean"] == pytest.approx(per_seed.mean(), abs=1e-6)
  assert d["ssim_std"] == pytest.approx(per_seed.std(), abs=1e-6)
  assert d["pearson_abs_mean"] == pytest.approx(
      np.abs(d["pearson"]).mean(), abs=1e-6)
  names = {p.name for p in tmp_path.iterdir()}
  assert {"grid.png", "input_0_chelsea.png", "output_s1_1_coffee.png",
          "output_s1_1_coffee_grey.png"} <= names


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
  d = tmp_path_factory.mktemp("bad")
  (d / "notes.png").write_text("this is not an image\n")
  img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
  Image.fromarray(img).save(d / "full.jpg", quality=90)
  data = (d / "full.jpg").read_bytes()
  (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
  Image.fromarray(img[:6, :6]).save(d / "tiny.png")
  return d


BAD = {
    "missing file": ["invert", "{d}/nope.png"],
    "not an image": ["invert", "{d}/notes.png"],
    "truncated jpeg": ["invert", "{d}/truncated.jpg"],
    "too small": ["invert", "{d}/tiny.png", "--arch", "alexnet",
                  "--size", "67"],
    "unknown arch": ["describe", "--arch", "resnet"],
    "unknown layer": ["describe", "--layer", "conv7_1"],
    "unknown distribution": ["invert", "chelsea", "--dist", "cauchy:1"],
    "bad scale": ["invert", "chelsea", "--dist", "gaussian:-1"],
    "width zero": ["describe", "--width", "0"],
    "width negative": ["invert", "chelsea", "--width", "-4"],
    "seeds zero": ["invert", "chelsea", "--seeds", "0"],
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_one_line_exit_2(capsys, tmp_path, bad_files, case):
  argv = [a.format(d=bad_files) for a in BAD[case]]
  if argv[0] == "invert":
    argv += ["--out", str(tmp_path), "--size", argv[argv.index("--size") + 1]
             if "--size" in argv else "32"]
  assert main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("randconv: error: "), err
  assert "Traceback" not in err[0]


def test_console_script_bad_input_no_traceback(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "randconv.cli", "invert",
                         str(tmp_path / "missing.jpg"), "--out",
                         str(tmp_path)], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip() == (f"randconv: error: no such file: "
                                 f"{tmp_path / 'missing.jpg'}")
