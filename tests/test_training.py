"""Decoder training: resume after a real kill, the optimizer against a
hand-written Caffe Adam, the data pipeline's determinism, and bad input.

Every run is tiny (width 8, 32x32 crops, a few steps) so that the file
runs in about a minute on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import kill_when, training_records

from randconv.repro.cli import main
from randconv.training import data as D
from randconv.training import records
from randconv.training import train as T


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """One tfds folder for the module: the photos are packed once."""
  path = tmp_path_factory.mktemp("tfds")
  cache = tmp_path_factory.mktemp("jax_cache")
  saved = {k: os.environ.get(k) for k in ("RANDCONV_DATA_DIR",
                                          "RANDCONV_JAX_CACHE")}
  os.environ["RANDCONV_DATA_DIR"] = str(path)
  # The subprocesses share compiled programs, as repeated CLI runs do.
  os.environ["RANDCONV_JAX_CACHE"] = str(cache)
  yield path
  for k, v in saved.items():
    if v is None:
      del os.environ[k]
    else:
      os.environ[k] = v


TINY = ["--layer", "conv2", "--width", "8", "--size", "32", "--short-side",
        "64", "--lr", "1e-3", "--log-every", "1", "--eval-every", "5",
        "--val-samples", "40"]


def _cmd(out, steps, every):
  return [sys.executable, "-m", "randconv.repro.cli", "train", *TINY, "--steps",
          str(steps), "--checkpoint-every", str(every), "--out", str(out)]


def test_kill_after_first_checkpoint_then_resume(data_dir, tmp_path):
  steps, every = 40, 5
  env = dict(os.environ, RANDCONV_DATA_DIR=str(data_dir))
  killed = tmp_path / "killed"
  kill_when(_cmd(killed, steps, every), lambda: any(
      r.get("event") == "checkpoint" for r in T.read_metrics(killed)),
      env=env, timeout=120)
  assert not (killed / "summary.json").exists(), "killed too late to test"
  first = [r["step"] for r in T.read_metrics(killed) if "loss" in r]
  assert max(first) < steps - 1

  resumed = subprocess.run(_cmd(killed, steps, every), env=env,
                           capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-500:]
  assert "could not be restored" not in resumed.stderr
  straight = tmp_path / "straight"
  plain = subprocess.run(_cmd(straight, steps, every), env=env,
                         capture_output=True, text=True, timeout=300)
  assert plain.returncode == 0, plain.stderr[-500:]

  la, ea = training_records(killed)
  lb, eb = training_records(straight)
  assert [s for s, _ in la] == list(range(steps)) == [s for s, _ in lb]
  np.testing.assert_allclose([v for _, v in la], [v for _, v in lb],
                             rtol=1e-6)
  assert [e[0] for e in ea] == [e[0] for e in eb]
  np.testing.assert_allclose(np.array(ea)[:, 1:], np.array(eb)[:, 1:],
                             rtol=1e-6)
  assert any(r.get("event") == "resumed" for r in T.read_metrics(killed))
  pa = T.load_run(killed)[3]
  pb = T.load_run(straight)[3]
  for x, y in zip(jax.tree_util.tree_leaves(pa),
                  jax.tree_util.tree_leaves(pb), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6,
                               atol=1e-7)


def test_optimizer_is_caffe_adam_with_decay():
  """optax chain vs Adam written out: decay added to the kernels' gradient
  first, rate multiplied by gamma at each milestone."""
  cfg = T.TrainConfig(lr=0.1, gamma=0.5, milestones=(2,), weight_decay=0.01)
  opt = T.make_optimizer(cfg)
  params = {"deconv1_1": {"kernel": jnp.array([1.0, -2.0]),
                          "bias": jnp.array([0.5])}}
  state = opt.init(params)
  w, b = np.array([1.0, -2.0]), np.array([0.5])
  m = {"w": np.zeros(2), "b": np.zeros(1)}
  v = {"w": np.zeros(2), "b": np.zeros(1)}
  rng = np.random.default_rng(0)
  for t in range(4):
    gw, gb = rng.standard_normal(2), rng.standard_normal(1)
    grads = {"deconv1_1": {"kernel": jnp.asarray(gw),
                           "bias": jnp.asarray(gb)}}
    updates, state = opt.update(grads, state, params)
    params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
    lr = 0.1 * (0.5 if t >= 2 else 1.0)
    for name, g, p in (("w", gw + 0.01 * w, w), ("b", gb, b)):
      m[name] = 0.9 * m[name] + 0.1 * g
      v[name] = 0.999 * v[name] + 0.001 * g * g
      mh = m[name] / (1 - 0.9 ** (t + 1))
      vh = v[name] / (1 - 0.999 ** (t + 1))
      p -= lr * mh / (np.sqrt(vh) + 1e-8)
    np.testing.assert_allclose(params["deconv1_1"]["kernel"], w, rtol=1e-5)
    np.testing.assert_allclose(params["deconv1_1"]["bias"], b, rtol=1e-5)


def test_loss_is_half_sum_of_squares():
  x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
  y = x + 0.5
  np.testing.assert_allclose(T.per_image_loss(jnp.asarray(y), jnp.asarray(x)),
                             [0.5 * 0.25 * 48] * 2, rtol=1e-6)


def test_pipeline_is_deterministic_and_holds_out(data_dir):
  cfg = D.DataConfig(crop=32, short_side=64, seed=3)
  data = D.load(cfg, 8)
  a, b = data.dataset(8), D.load(cfg, 8).dataset(8)
  for t in (0, 1, 17):
    np.testing.assert_array_equal(a[t], b[t])
    assert a[t].shape == (8, 32, 32, 3) and a[t].dtype == np.uint8
  it = data.batches(8, start=17, threads=1)
  np.testing.assert_array_equal(next(it), a[17])
  np.testing.assert_array_equal(next(it), a[18])
  other = D.load(D.DataConfig(crop=32, short_side=64, seed=4), 8).dataset(8)
  assert not np.array_equal(other[0], a[0])
  val = D.validation_names(cfg)
  assert "chelsea" in val and len(val) == 3
  builder = D.packed_builder(cfg)
  src = builder.as_data_source("train")
  train = {src[i]["name"].decode() for i in range(len(src))}
  assert not train & set(val) and len(train) == 6
  assert train == set(D.image_split(cfg)[0])  # the split read is the packed
  # The validation crops are fixed: the same at every load.
  np.testing.assert_array_equal(data.val, D.load(cfg, 8).val)


PHOTOS = ["chelsea", "astronaut", "coffee", "rocket", "motorcycle_left",
          "motorcycle_right", "hubble_deep_field", "immunohistochemistry",
          "retina"]
PAIR = {"motorcycle_left", "motorcycle_right"}


@pytest.mark.parametrize("n_val", [2, 3, 4])
def test_split_keeps_the_stereo_pair_on_one_side(n_val):
  """Seeds 0-19: every photo on exactly one side, the cat and ``n_val``
  photos held out, the stereo pair's two views together, and held out
  for some seeds where it fits (with the cat, from 3 on)."""
  assert sorted(PHOTOS) == sorted(D.images.photo_names())
  pair_held_out = set()
  for seed in range(20):
    cfg = D.DataConfig(seed=seed, val_images=n_val)
    train, val = D.split_names(PHOTOS, cfg)
    assert sorted(train + val) == sorted(PHOTOS)
    assert len(val) == n_val and "chelsea" in val
    assert PAIR <= set(train) or PAIR <= set(val), (seed, val)
    pair_held_out.add(PAIR <= set(val))
    assert D.image_split(cfg) == (train, val)
  assert pair_held_out == ({False} if n_val == 2 else {False, True})
  # 8 of 9 held out: the pair too, even where it comes last in the draw.
  for seed in range(20):
    train, val = D.split_names(PHOTOS, D.DataConfig(seed=seed, val_images=8))
    assert len(train) == 1 and PAIR <= set(val), seed


def test_split_holds_out_fewer_only_where_groups_force_it(monkeypatch):
  """Three triplets: 4 or 5 held out become 3 (the cat's triplet), 7
  becomes 6, and 2 cannot be held out at all; a folder has no twins."""
  triplets = (tuple(PHOTOS[:3]), tuple(PHOTOS[3:6]), tuple(PHOTOS[6:]))
  monkeypatch.setattr(D.images, "PHOTO_TWINS", triplets)
  for n_val, held in ((4, 3), (5, 3), (7, 6), (3, 3)):
    for seed in range(5):
      _, val = D.split_names(PHOTOS, D.DataConfig(seed=seed, val_images=n_val))
      assert len(val) == held and set(triplets[0]) <= set(val)
      assert sum(set(t) <= set(val) for t in triplets) == held // 3
  with pytest.raises(D.DataError, match="without splitting twins"):
    D.split_names(PHOTOS, D.DataConfig(val_images=2))
  folder = D.DataConfig(source="some/folder", val_images=2)
  vals = [D.split_names(PHOTOS, dataclasses.replace(folder, seed=s))[1]
          for s in range(20)]
  assert all(len(v) == 2 and "chelsea" in v for v in vals)
  assert any(len(PAIR & set(v)) == 1 for v in vals)


def _run_cli(args, capsys):
  rc = main(args)
  err = capsys.readouterr().err
  last = [s for s in re.split(r"[\r\n]", err) if s.strip()][-1]
  return rc, last


def test_bad_input_is_one_line_and_exit_2(data_dir, tmp_path, capsys, torch):
  from test_weights import ALEXNET, _torch_features, _write_keras_h5
  torch.manual_seed(0)
  alex = tmp_path / "alexnet-owt-test.pth"
  torch.save(_torch_features(torch, ALEXNET).state_dict(), alex)
  rc, line = _run_cli(["features", "cat", "--arch", "vgg16", "--weights",
                       str(alex), "--npy", str(tmp_path / "f.npy")], capsys)
  assert rc == 2 and "wrong architecture" in line, line
  assert line.startswith("randconv: error:")

  h5 = tmp_path / "vgg.h5"
  _write_keras_h5(h5, np.random.default_rng(0))
  cut = tmp_path / "cut.h5"
  cut.write_bytes(h5.read_bytes()[:100_000])
  rc, line = _run_cli(["features", "cat", "--weights", str(cut), "--npy",
                       str(tmp_path / "f.npy")], capsys)
  assert rc == 2 and "truncated" in line, line

  rc, line = _run_cli(["train", *TINY, "--steps", "2", "--data", "imagenette",
                       "--data-dir", str(tmp_path / "empty"), "--out",
                       str(tmp_path / "r1")], capsys)
  assert rc == 2 and "not prepared" in line, line

  rc, line = _run_cli(["train", *TINY, "--steps", "2", "--data",
                       str(tmp_path / "nowhere"), "--out",
                       str(tmp_path / "r2")], capsys)
  assert rc == 2 and "no such dataset" in line, line

  folder = tmp_path / "few"
  folder.mkdir()
  from randconv.plotting import save_png
  rng = np.random.default_rng(0)
  for i in range(3):
    save_png(folder / f"img{i}.png", rng.random((40, 40, 3)))
  rc, line = _run_cli(["train", *TINY, "--steps", "2", "--short-side", "40",
                       "--data", str(folder), "--out", str(tmp_path / "r3")],
                      capsys)
  assert rc == 2 and "fewer than one batch of 32" in line, line


def test_diverging_run_keeps_last_good_checkpoint(data_dir, tmp_path, capsys):
  """The rate jumps by 1e20 at step 4 (a legal, silly schedule): the run
  must stop with one line and leave the step-4 checkpoint."""
  out = tmp_path / "div"
  rc, line = _run_cli(["train", *TINY, "--steps", "20", "--gamma", "1e20",
                       "--milestones", "4", "--checkpoint-every", "2",
                       "--eval-every", "1", "--out", str(out)], capsys)
  assert rc == 2 and "diverged" in line and "step 4" in line, line
  steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] == 4
  _, _, _, params = T.load_run(out)
  assert all(bool(jnp.all(jnp.isfinite(a)))
             for a in jax.tree_util.tree_leaves(params))
  recs = T.read_metrics(out)
  assert all(np.isfinite(r["loss"]) for r in recs if "loss" in r)
  assert json.loads((out / "config.json").read_text())["gamma"] == 1e20


def test_resume_ignores_the_conv_path_only(data_dir, tmp_path, capsys):
  # The conv path changes float rounding and speed, not the run: a run
  # made with one goes on with another; any other field is refused.
  assert T.TrainConfig().impl == T.default_conv_impl() == "wgrad"  # a CPU
  out = str(tmp_path / "impl")
  args = ["train", *TINY, "--steps", "2", "--out", out]
  assert main([*args, "--conv-impl", "direct"]) == 0
  assert main([*args, "--conv-impl", "wgrad"]) == 0
  rc, line = _run_cli([*args, "--lr", "1e-2"], capsys)
  assert rc == 2 and "another config" in line and "lr" in line, line


def test_checkpoint_restores_without_warnings_and_checks_layout(
    tmp_path, caplog):
  """A checkpoint is restored (values and all) with no orbax warning
  ("could not be restored", once per resume before); a checkpoint of
  another layout is refused with one line, read from its metadata."""
  import logging
  spec = T.TrainConfig(layer="conv1", width=4).spec()
  dec = T.init_decoder(jax.random.PRNGKey(0), spec)
  opt = T.make_optimizer(T.TrainConfig())
  state = opt.init(dec)
  T.save_checkpoint(T.checkpoint_manager(tmp_path / "run"), 3, dec, state)
  zero = jax.tree_util.tree_map(jnp.zeros_like, (dec, state))
  with caplog.at_level(logging.INFO):
    manager = T.checkpoint_manager(tmp_path / "run")
    got, got_state = T.restore_checkpoint(manager, manager.latest_step(), *zero)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
      caplog.text
  for a, b in zip(jax.tree_util.tree_leaves((dec, state)),
                  jax.tree_util.tree_leaves((got, got_state)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  old = {n: {"w": p["kernel"], "b": p["bias"]} for n, p in dec.items()}
  T.save_checkpoint(T.checkpoint_manager(tmp_path / "old"), 2, old,
                    opt.init(old))
  with pytest.raises(T.RandconvError, match="keyed 'w'/'b'"):
    T.restore_checkpoint(T.checkpoint_manager(tmp_path / "old"), 2, *zero)


def test_packing_goes_to_the_cache_without_a_download_line(
    tmp_path, monkeypatch, capfd, caplog):
  """With no data folder named, the photos are packed under
  $RANDCONV_CACHE_DIR/tfds, with one line saying so, no tfds
  "Downloading and preparing" (nothing is downloaded) and no tfds warning
  (its "Variant folder ... has no dataset_info.json" is about the folder it
  is writing); a second run finds them packed and says nothing."""
  import logging
  from pathlib import Path
  monkeypatch.delenv("RANDCONV_DATA_DIR", raising=False)
  monkeypatch.setenv("RANDCONV_CACHE_DIR", str(tmp_path / "cache"))
  cfg = D.DataConfig(short_side=40, seed=7)
  capfd.readouterr()
  with caplog.at_level(logging.INFO):
    first = D.packed_builder(cfg)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
      caplog.text
  out, err = capfd.readouterr()
  assert Path(first.data_dir).is_relative_to(tmp_path / "cache" / "tfds")
  assert "ownload" not in out + err, out + err
  assert out == ""  # stdout is for results
  assert err.count("[data] packing photos") == 1
  assert str(first.data_dir) in err
  assert len(first.as_data_source("validation")) == 3
  again = D.packed_builder(cfg)
  out, err = capfd.readouterr()
  assert again.data_dir == first.data_dir
  assert "[data]" not in err and "ownload" not in out + err


def test_catalog_source_under_mock_data(tmp_path):
  """imagenette through ``tfds.data_source`` (mocked: random images of the
  real features), decoded and resized on the fly; two real training steps."""
  import tensorflow_datasets as tfds
  cfg = D.DataConfig(source="imagenette", crop=32, short_side=40,
                     val_samples=8)
  with tfds.testing.mock_data(num_examples=40,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    data = D.load(cfg, 8)
    assert data.val.shape == (8, 32, 32, 3) and data.val.dtype == np.uint8
    np.testing.assert_array_equal(data.dataset(8)[3], data.dataset(8)[3])
    res = T.train_and_evaluate(
        T.TrainConfig(layer="conv1", width=8, steps=2, batch=8, lr=1e-3,
                      eval_every=2, checkpoint_every=2, data=cfg),
        tmp_path / "run", progress=False, threads=0)
  assert res.done and len(T.loss_curve(res.metrics)[1]) == 2


def test_time_budget_stops_with_a_checkpoint_and_resumes(data_dir, tmp_path,
                                                        capsys, monkeypatch):
  # The command's one clock: a budget spent before the first step stops
  # the run at step 0 (validation point, no step); the same command
  # without a budget then finishes it.
  out = str(tmp_path / "budget")
  args = ["train", *TINY, "--steps", "2", "--out", out]
  monkeypatch.setenv("RANDCONV_TIME_BUDGET_S", "0")
  assert main(args) == 0
  recs = T.read_metrics(out)
  assert [r["step"] for r in recs if "val_loss" in r] == [0]
  assert not any("loss" in r for r in recs)
  assert not (tmp_path / "budget" / "summary.json").exists()
  monkeypatch.delenv("RANDCONV_TIME_BUDGET_S")
  assert main(args) == 0
  assert [r["step"] for r in T.read_metrics(out) if "loss" in r] == [0, 1]
  # The step-0 evaluation is kept, not repeated.
  assert [r["step"] for r in T.read_metrics(out) if "val_loss" in r] == [0, 2]
  assert json.loads((tmp_path / "budget" / "summary.json").read_text())[
      "done"]
  capsys.readouterr()


# --------------------------------------------------------------------------
# Training on cached features (randconv.training.features).

class _StopAfter:
  """A deadline that expires after ``n`` steps (checked once a step)."""

  def __init__(self, n):
    self.n = n

  def expired(self):
    self.n -= 1
    return self.n < 0


def _cached_pair(tmp_path, name, tol, **kw):
  """The same tiny run through the frozen encoder and on its cached
  features (all steps x batch crops: the same batches); per-step and
  evaluation losses agree to ``tol`` (relative); returns the cached
  config and run."""
  cfg = T.TrainConfig(steps=6, batch=4, lr=1e-3, eval_every=3,
                      checkpoint_every=3, log_every=1, **kw)
  plain = T.train_and_evaluate(cfg, tmp_path / f"{name}_plain",
                               progress=False, threads=0)
  cached_cfg = dataclasses.replace(cfg, feature_cache=cfg.steps * cfg.batch)
  cached = T.train_and_evaluate(cached_cfg, tmp_path / f"{name}_cached",
                                progress=False, threads=0)
  la, ea = training_records(plain.workdir)
  lb, eb = training_records(cached.workdir)
  assert [s for s, _ in la] == [s for s, _ in lb] == list(range(6))
  np.testing.assert_allclose([v for _, v in lb], [v for _, v in la],
                             rtol=tol)
  assert [e[0] for e in ea] == [e[0] for e in eb] == [0, 3, 6]
  np.testing.assert_allclose(np.array(eb)[:, 1:], np.array(ea)[:, 1:],
                             rtol=tol)
  # The losses moved: the comparison is of training, not of step 0. On the
  # fixed evaluation crops (a batch's loss varies more with its crops).
  assert (np.array(ea[-1][1:]) < 0.98 * np.array(ea[0][1:])).all(), ea
  return cached_cfg, cached


def test_cached_features_train_like_the_encoder_and_resume(data_dir,
                                                           tmp_path):
  """Random VGG Conv2 (width 8, 32x32): the same per-step losses and
  evaluations, to 1e-5 relative, with and without the cache; a cached
  run stopped after 4 steps and resumed ends as the straight one."""
  data = D.DataConfig(crop=32, short_side=64, val_samples=12)
  cfg, straight = _cached_pair(tmp_path, "random", 1e-5, layer="conv2",
                               width=8, data=data)
  assert json.loads((straight.workdir / "config.json").read_text())[
      "feature_cache"] == 24
  out = tmp_path / "resumed"
  first = T.train_and_evaluate(cfg, out, progress=False, threads=0,
                               deadline=_StopAfter(4))
  assert (first.step, first.stopped) == (4, "time budget")
  T.train_and_evaluate(cfg, out, progress=False, threads=0)
  (la, ea), (lb, eb) = training_records(out), training_records(
      straight.workdir)
  # The same program: bit for bit (the stop added a validation at step 4).
  assert la == lb and [e for e in ea if e[0] != 4] == eb


def test_cached_features_of_a_pretrained_encoder(data_dir, tmp_path):
  """HED (when fetched) or a Keras-layout file: biases and Caffe/Keras
  preprocessing; VGG Conv1 on 16x16 crops, to 1e-5 relative."""
  from randconv.training import weights as W
  try:
    enc, fmt = str(W.hed_weights_path()), "hed"
  except W.WeightsError:
    from test_weights import _write_keras_h5
    enc, fmt = str(tmp_path / "vgg.h5"), "keras"
    _write_keras_h5(enc, np.random.default_rng(0))
  _cached_pair(tmp_path, fmt, 1e-5, layer="conv1", encoder=enc,
               weights_format=fmt, data=D.DataConfig(
                   crop=16, short_side=32, val_samples=8))


def test_cached_batches_wrap_around_the_stream(data_dir):
  """Batch t of the cache is crops [tB, (t+1)B) of the stream modulo N,
  and its features are the encoder's of those crops."""
  from randconv.training import features as F
  cfg = T.TrainConfig(layer="conv1", width=4, batch=4,
                      data=D.DataConfig(crop=16, short_side=32,
                                        val_samples=6))
  spec, data = cfg.spec(), D.load(cfg.data, 4)
  enc = T.build_encoder(cfg, spec)
  cache = F.build_cache(10, 4, spec, enc, data, show=False)
  stream = np.concatenate([data.dataset(4)[t] for t in range(3)])[:10]
  it = cache.batches(4, start=1)
  for t in range(1, 6):
    z, x = next(it)
    idx = (np.arange(t * 4, t * 4 + 4)) % 10
    np.testing.assert_array_equal(np.asarray(x), stream[idx])
    want = F.encode_layers(spec, enc, stream[idx].astype(np.float32) / 255,
                           ["conv1"])
    np.testing.assert_allclose(np.asarray(z), want["conv1"], rtol=1e-5,
                               atol=1e-7)
  np.testing.assert_array_equal(np.asarray(cache.val[1]), data.val)
  assert cache.val[0].shape == (6, 16, 16, 4)
  # One process's rows of a data-parallel batch.
  z, x = next(cache.batches(4, start=2, rows=slice(2, 4)))
  np.testing.assert_array_equal(x, stream[[0, 1]])


def test_encode_layers_is_each_truncated_encoder(rng):
  """One pass of a VGG Conv3 encoder gives Conv1..Conv3 as the encoders
  truncated there, with the same params (to float32 rounding)."""
  from randconv import modules
  from randconv.spec import make_spec
  from randconv.training import features as F
  from randconv.training import weights as W
  deep = make_spec("vgg16", "conv3", width=8)
  enc = W.random_encoder(jax.random.PRNGKey(5), deep)
  x = rng.random((2, 24, 24, 3)).astype(np.float32)
  got = F.encode_layers(deep, enc, x, ["conv1", "pool2", "conv3"])
  assert set(got) == {"conv1", "pool2", "conv3"}
  for layer, z in got.items():
    spec = make_spec("vgg16", layer, width=8)
    params = {c.name: enc.params[c.name] for c in spec.encoder
              if c.name in enc.params}
    want = modules.Encoder(spec).apply({"params": params},
                                       W.preprocess(x, "center"))
    assert z.shape == want.shape and float(jnp.abs(want).max()) > 0
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6 * float(
        jnp.abs(want).max()))
  with pytest.raises(T.RandconvError, match="beyond"):
    F.encode_layers(make_spec("vgg16", "conv1", width=8), enc, x, ["conv2"])


@pytest.mark.parametrize("sigma", [0.001, 0.15])
def test_scaled_cached_features_equal_a_direct_draw(rng, sigma):
  """A Gaussian encoder's features at sigma are the sigma = 0.015
  encoder's (same key) times (sigma / 0.015)^L, L = 4 convs at Conv2."""
  from randconv.spec import make_spec
  from randconv.training import features as F
  from randconv.training import weights as W
  spec = make_spec("vgg16", "conv2", width=8)
  key = jax.random.PRNGKey(3)
  x = rng.random((2, 24, 24, 3)).astype(np.float32)
  base = F.encode_layers(spec, W.random_encoder(key, spec), x, ["conv2"])
  direct = F.encode_layers(spec, W.random_encoder(
      key, spec, f"gaussian:{sigma}"), x, ["conv2"])["conv2"]
  assert F.sigma_factor(spec, "gaussian:0.015", f"gaussian:{sigma}") == \
      pytest.approx((sigma / 0.015) ** 4, rel=1e-12)
  scaled = F.scale_features(base["conv2"], spec, f"gaussian:{sigma}")
  peak = float(jnp.abs(direct).max())
  assert peak > 0 and not np.allclose(direct, base["conv2"])
  np.testing.assert_allclose(scaled, direct, rtol=1e-5, atol=1e-6 * peak)
  with pytest.raises(T.RandconvError, match="Gaussian"):
    F.sigma_factor(spec, "gaussian:0.015", "uniform:0.04")


def test_rms_features_cached_uncached_and_scale_free(data_dir, tmp_path):
  """``feature_scale="rms"``: the cached and uncached runs agree (1e-5),
  the divisor is the features' RMS over the training-set crops (computed
  here from the encoder directly), and an encoder whose features are
  10^4 times larger (sigma x10 over 4 convs) trains to the same losses:
  the reading removes scale and nothing else."""
  from randconv.training import weights as W
  data = D.DataConfig(crop=32, short_side=64, val_samples=12)
  kw = dict(layer="conv2", width=8, data=data, feature_scale="rms",
            preprocessing="caffe")
  cfg, run = _cached_pair(tmp_path, "rms", 1e-5, **kw)
  spec = cfg.spec()
  enc = T.build_encoder(cfg, spec)
  assert enc.preprocessing == "caffe"
  z = np.asarray(W.features(enc, spec, D.load(data, 4).train_eval / 255.0),
                 np.float64)
  assert run.divisor == pytest.approx(np.sqrt(np.mean(z ** 2)), rel=1e-5)
  assert run.summary["feature_divisor"] == run.divisor
  big = T.train_and_evaluate(dataclasses.replace(cfg, dist="gaussian:0.15"),
                             tmp_path / "rms_big", progress=False, threads=0)
  assert big.divisor == pytest.approx(1e4 * run.divisor, rel=1e-4)
  la, ea = training_records(run.workdir)
  lb, eb = training_records(big.workdir)
  np.testing.assert_allclose([v for _, v in lb], [v for _, v in la],
                             rtol=1e-4)
  np.testing.assert_allclose(np.array(eb)[:, 1:], np.array(ea)[:, 1:],
                             rtol=1e-4)
  # Raw, the same two encoders train differently (the control).
  raw = [T.train_and_evaluate(dataclasses.replace(
      cfg, feature_scale="raw", dist=d), tmp_path / f"raw_{i}",
      progress=False, threads=0) for i, d in enumerate(
          ("gaussian:0.015", "gaussian:0.15"))]
  assert raw[0].divisor == 1.0
  fa, fb = (training_records(r.workdir)[0][-1][1] for r in raw)
  assert abs(fa - fb) > 0.01 * fa
  with pytest.raises(T.RandconvError, match="feature_scale"):
    T.TrainConfig(feature_scale="unit")
  with pytest.raises(T.RandconvError, match="preprocessing"):
    T.TrainConfig(preprocessing="bgr")


def test_build_caches_give_each_layers_cache(data_dir):
  """One encoder pass for Conv1 and Conv2 gives each layer's cache as
  built alone (to float32 rounding), and a cache handed to a run must be
  that run's size."""
  from randconv.training import features as F
  data_cfg = D.DataConfig(crop=32, short_side=64, val_samples=6)
  cfg = T.TrainConfig(layer="conv2", width=8, batch=4, data=data_cfg,
                      feature_cache=8)
  data = D.load(data_cfg, 4)
  spec = cfg.spec()
  enc = T.build_encoder(cfg, spec)
  both = F.build_caches(8, 4, spec, enc, data, ["conv1", "conv2"],
                        show=False)
  for layer in ("conv1", "conv2"):
    sub = dataclasses.replace(cfg, layer=layer)
    alone = F.build_cache(8, 4, sub.spec(), T.build_encoder(sub, sub.spec()),
                          data, show=False)
    for a, b in zip((alone.train, alone.val, alone.train_eval),
                    (both[layer].train, both[layer].val,
                     both[layer].train_eval), strict=True):
      peak = float(np.abs(np.asarray(a[0])).max())
      assert peak > 0
      np.testing.assert_allclose(b[0], a[0], rtol=1e-5, atol=1e-6 * peak)
      np.testing.assert_array_equal(b[1], a[1])
  F.check_cache(both["conv2"], cfg)
  with pytest.raises(T.RandconvError, match="wants 16"):
    F.check_cache(both["conv2"], dataclasses.replace(cfg, feature_cache=16))
  doubled = both["conv1"].scaled(2.0)
  np.testing.assert_array_equal(np.asarray(doubled.val[0]),
                                2 * np.asarray(both["conv1"].val[0]))


def test_baseline_is_the_mean_images_loss(rng):
  """The best constant image's loss: the training crops' mean image
  scored by the library's per-image loss, and no better constant (a
  nudge either way raises the training loss)."""
  train = rng.integers(0, 256, (10, 4, 4, 3)).astype(np.uint8)
  val = rng.integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
  mean = train.astype(np.float64).mean(axis=0) / 255.0
  want = float(T.per_image_loss(
      jnp.broadcast_to(jnp.asarray(mean, jnp.float32), val.shape),
      jnp.asarray(val / 255.0, jnp.float32)).mean())
  assert records.baseline_loss(train, val) == pytest.approx(want, rel=1e-5)
  x = train / 255.0
  for eps in (-0.01, 0.01):
    assert records.baseline_loss(train, train) < float(
        (0.5 * np.square(x - (mean + eps)).sum(axis=(1, 2, 3))).mean())
