"""Training a decoder (DCN) on a frozen encoder (CNN): Section 3 of the paper.

The paper (Section 3.1): the DCN is initialised with MSRA (He et al. 2015),
trained with Adam (beta1 0.9, beta2 0.999), batch 32, learning rate 1e-4 with
"multistep" decay and weight decay 4e-4, for 200,000 iterations on ImageNet;
the encoder is frozen, random or pre-trained. Choices made here, where the
paper is silent:

* the loss is Caffe's EuclideanLoss, ``0.5 * sum over pixels and channels of
  (output - input)^2``, averaged over the batch; the target is the [0, 1]
  RGB crop (docs/design.md §5);
* weight decay is added to the gradient before Adam, as Caffe's solver does,
  on kernels only (not biases);
* multistep: the rate is multiplied by ``gamma`` (0.1) at 50% and 75% of the
  steps;
* decoder convs carry biases, initialised to zero; MSRA is N(0, 2 / fan_in)
  with fan_in = k * k * input channels of the decoder conv.

One run is one workdir: ``config.json``, ``metrics.jsonl`` (one line per step
with its batch loss, and the validation and training-set losses every
``eval_every`` steps), ``checkpoints/`` (orbax, every ``checkpoint_every``
steps and at the end) and ``summary.json`` when done. Running again in the
same workdir resumes from the last checkpoint; batch ``t`` is a pure function
of the seed and ``t`` (:mod:`randconv.training.data`), so the resumed losses
equal an uninterrupted run's. With ``feature_cache`` the decoder trains on
the frozen encoder's features of a fixed, seeded set of crops, computed
once (:mod:`randconv.training.features`).

A :class:`randconv.deadline.Deadline` (``--time-budget`` or
``RANDCONV_TIME_BUDGET_S`` of the command) stops a run cleanly between
steps, with a checkpoint, when the time is up; run it again to go on.

The networks are the Flax modules of :mod:`randconv.modules`: the decoder's
params (and the checkpoints' ``params``) are ``{conv_name: {"kernel": HWIO,
"bias": [O]}}``. Runs written before this layout (params keyed ``"w"`` and
``"b"``) cannot be resumed or loaded: train them again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from randconv import distributed, modules, settings
from randconv.deadline import NO_DEADLINE, Deadline
from randconv.distributed import Placement
from randconv.distributions import parse_distribution
from randconv.errors import RandconvError
from randconv.policy import ConvPolicy
from randconv.rundir import RunDir, WorkdirError
from randconv.spec import Conv, NetSpec, make_spec
from randconv.training import data as data_lib
from randconv.training import features as features_lib
from randconv.training import weights as weights_lib
from randconv.training.loop import (
  Loop,
  Programs,
  RunResult,
  TrainingDiverged,  # noqa: F401 - train's API
  summarise,
)
from randconv.training.objective import (
  decoder_module,
  mean_over_batches,
  pad_rows,
  per_image_loss,
)
from randconv.training.records import (  # noqa: F401 - part of train's API
  checkpoint_manager,
  eval_curve,
  loss_curve,
  read_metrics,
  restore_checkpoint,
  save_checkpoint,
  summarize,
  truncate_metrics,
)

Params = dict  # Flax params: {conv_name: {"kernel": HWIO, "bias": [O]}}
FEATURE_SCALES = ("raw", "rms")


class RunMismatch(RandconvError):
  """A workdir holds a run with another config."""


def default_conv_impl(backend: str | None = None) -> str:
  """The fastest measured training conv path for the backend: ``wgrad`` on
  a CPU (the VGG Conv2 step at 64x64 takes 0.30 s against 0.59 s with
  XLA's convs, benchmarks/train_vs_torch.py), ``direct`` elsewhere (cuDNN's
  own gradients)."""
  return "wgrad" if (backend or jax.default_backend()) == "cpu" else "direct"


@dataclass(frozen=True)
class TrainConfig:
  """One decoder training run (the paper's settings are the defaults).

  Attributes:
    arch, layer, width: the network (docs/design.md §1-2); ``width`` only with a
      random encoder.
    encoder: ``random``, ``hed`` or a weights file (torchvision or Keras).
    weights_format: ``hed``, ``keras`` or ``torchvision`` (None: detected).
    dist: the random encoder's distribution (docs/design.md §4).
    steps, batch, lr, gamma, milestones: the schedule; ``milestones`` are
      steps (None: 50% and 75% of ``steps``).
    weight_decay: added to the kernels' gradient (Caffe).
    seed: the random encoder, the decoder's init and the data order.
    eval_every, checkpoint_every, log_every: in steps.
    conv_impl: ``direct`` (XLA's convolution), ``auto``/``winograd``
      (:mod:`randconv.fastconv` for 3x3 stride-1 convs) or ``wgrad`` (for
      training: one matmul for the 3-channel convs next to 32 or more
      channels and for unpooling + conv, Winograd kernel gradients, XLA's
      forward and input gradient elsewhere), the names of
      :meth:`randconv.policy.ConvPolicy.named`;
      same numbers up to float rounding, speed differs by layer and size
      (benchmarks/train_vs_torch.py).
      None (the default): :func:`default_conv_impl` of the backend that
      runs it (:attr:`impl`). Not compared on resume: a run may go on with
      another path or on another backend.
    data: the images (:class:`randconv.training.data.DataConfig`).
    feature_cache: 0 (off), or train on the cached encoder features of the
      first ``feature_cache`` crops of the stream, batch ``t`` being crops
      ``[t batch, (t + 1) batch)`` modulo that number
      (:mod:`randconv.training.features`): the same losses up to float
      rounding when it is at least ``steps * batch``, without the
      encoder's pass at each step. Left out of :meth:`as_dict` when 0, so
      runs written before it resume.
    feature_scale: ``raw`` (the decoder sees the encoder's features as
      they are) or ``rms`` (divided by one scalar, their root mean square
      over the fixed training-set evaluation crops, so that encoders whose
      features differ only in scale train alike; docs/design.md §5).
      Left out of :meth:`as_dict` when ``raw``.
    preprocessing: the encoder's input preprocessing
      (:func:`randconv.images.preprocess` modes); None: the encoder's own
      (``center`` for a random one, the weights' for a pre-trained one).
      Left out of :meth:`as_dict` when None.
  """

  arch: str = "vgg16"
  layer: str = "conv2"
  encoder: str = "random"
  weights_format: str | None = None
  dist: str = "gaussian:0.015"
  width: int | None = None
  steps: int = 200_000
  batch: int = 32
  lr: float = 1e-4
  gamma: float = 0.1
  milestones: tuple[int, ...] | None = None
  weight_decay: float = 4e-4
  seed: int = 0
  eval_every: int = 1000
  checkpoint_every: int = 5000
  log_every: int = 10
  conv_impl: str | None = None
  data: data_lib.DataConfig = field(default_factory=data_lib.DataConfig)
  feature_cache: int = 0
  feature_scale: str = "raw"
  preprocessing: str | None = None

  def __post_init__(self):
    if self.feature_scale not in FEATURE_SCALES:
      raise RandconvError(f"feature_scale {self.feature_scale!r}: one of "
                          f"{', '.join(FEATURE_SCALES)}")
    if self.preprocessing not in (None, *weights_lib.PREPROCESSING_MODES):
      raise RandconvError(f"preprocessing {self.preprocessing!r}: one of "
                          f"{', '.join(weights_lib.PREPROCESSING_MODES)}")

  @property
  def impl(self) -> str:
    """The conv path this run uses here (:attr:`conv_impl` or the
    backend's default)."""
    return self.conv_impl or default_conv_impl()

  def schedule_milestones(self) -> tuple[int, ...]:
    if self.milestones is not None:
      return tuple(self.milestones)
    return (self.steps // 2, (3 * self.steps) // 4)

  def as_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["milestones"] = list(self.schedule_milestones())
    d["data"] = self.data.as_dict()
    for name, default in (("feature_cache", 0), ("feature_scale", "raw"),
                          ("preprocessing", None)):
      if d[name] == default:  # runs written before the field resume
        del d[name]
    return d

  def spec(self) -> NetSpec:
    return make_spec(self.arch, self.layer, width=self.width,
                     activation="relu", decoder_activation="leaky_relu")


def config_from_dict(d: dict) -> TrainConfig:
  d = dict(d)
  data = dict(d.pop("data"))
  data["holdout"] = tuple(data["holdout"])
  d["milestones"] = tuple(d["milestones"]) if d.get("milestones") else None
  return TrainConfig(data=data_lib.DataConfig(**data), **d)


# --------------------------------------------------------------------------
# The model: a frozen encoder and a trainable decoder.

def decoder_convs(spec: NetSpec) -> list[Conv]:
  return [layer for layer in spec.decoder if isinstance(layer, Conv)]


def init_decoder(key: jax.Array, spec: NetSpec) -> Params:
  """MSRA kernels, N(0, 2 / fan_in), and zero biases for every decoder
  conv: the params of :class:`randconv.modules.Decoder`."""
  msra = parse_distribution("msra").initializer()
  return dict(modules.Decoder(spec, kernel_init=msra, use_bias=True).init(
      key, method="draw")["params"])


def _encoder_module(spec: NetSpec, enc: weights_lib.Encoder,
                    policy: ConvPolicy) -> modules.Encoder:
  return modules.Encoder(spec, use_bias=enc.pretrained, policy=policy)


def build_encoder(cfg: TrainConfig, spec: NetSpec) -> weights_lib.Encoder:
  if cfg.encoder != "random" and cfg.width is not None:
    raise RandconvError("--width applies to random encoders only: pre-trained "
                        "weights fix the widths")
  enc = weights_lib.make_encoder(
      spec, cfg.encoder, key=jax.random.fold_in(jax.random.PRNGKey(cfg.seed),
                                                1),
      distribution=cfg.dist, fmt=cfg.weights_format)
  if cfg.preprocessing is not None:
    enc = dataclasses.replace(enc, preprocessing=cfg.preprocessing)
  return enc


def reconstruct(dec_params: Params, enc: weights_lib.Encoder,
                spec: NetSpec, x: jax.Array,
                conv_impl: str | ConvPolicy = "direct",
                divisor: float = 1.0) -> jax.Array:
  """The CNN-DCN output for RGB images ``x`` in [0, 1]: [B, H, W, 3].
  ``conv_impl``: a :meth:`ConvPolicy.named` name, or a policy;
  ``divisor``: the decoder sees the features divided by it (a run's
  :attr:`RunResult.divisor`, ``feature_scale``)."""
  policy = ConvPolicy.named(conv_impl)
  z = _encoder_module(spec, enc, policy).apply(
      {"params": enc.params},
      weights_lib.preprocess(x, enc.preprocessing)) / divisor
  return decoder_module(spec, policy).apply({"params": dec_params}, z,
                                             x.shape[1:3])


def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
  """The multistep rate: ``lr``, times ``gamma`` at each milestone."""
  return optax.piecewise_constant_schedule(
      cfg.lr, {m: cfg.gamma for m in cfg.schedule_milestones() if m > 0})


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """Adam(0.9, 0.999) with Caffe's weight decay added to the kernels'
  gradient first, and the multistep rate."""
  schedule = lr_schedule(cfg)
  kernels_only = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
      lambda path, _: path[-1].key == "kernel", params)
  return optax.chain(
      optax.add_decayed_weights(cfg.weight_decay, mask=kernels_only),
      optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
      optax.scale_by_learning_rate(schedule))


def make_train_step(spec: NetSpec, enc: weights_lib.Encoder,
                    optimizer: optax.GradientTransformation,
                    conv_impl: str | ConvPolicy = "direct",
                    placement: Placement | None = None,
                    divisor: float = 1.0):
  """``step(dec, opt_state, enc_params, batch_u8) -> (dec, opt_state,
  loss)``, jit-compiled; ``batch_u8``: uint8 [B, H, W, 3]. The encoder is
  frozen: only the decoder's params are differentiated. ``conv_impl``: a
  :meth:`ConvPolicy.named` name, or a policy. ``placement``: on several
  devices the batch is split over them and everything else replicated
  (data parallelism; the compiler reduces the gradients). ``divisor``:
  the decoder sees the features divided by it."""
  mode = enc.preprocessing
  policy = ConvPolicy.named(conv_impl)
  encoder = _encoder_module(spec, enc, policy)
  decoder = decoder_module(spec, policy)

  def loss_fn(dec, enc_params, x):
    z = encoder.apply({"params": enc_params},
                      weights_lib.preprocess(x, mode)) / divisor
    y = decoder.apply({"params": dec}, z, x.shape[1:3])
    return jnp.mean(per_image_loss(y, x))

  def step(dec, opt_state, enc_params, batch_u8):
    x = batch_u8.astype(jnp.float32) / 255.0
    loss, grads = jax.value_and_grad(loss_fn)(dec, enc_params, x)
    updates, opt_state = optimizer.update(grads, opt_state, dec)
    return optax.apply_updates(dec, updates), opt_state, loss

  return (placement or Placement.one()).jit(
      step, 3, donate_argnums=(0, 1), out_replicated=3)


def make_eval(spec: NetSpec, enc: weights_lib.Encoder, batch: int,
              conv_impl: str | ConvPolicy = "direct",
              placement: Placement | None = None, divisor: float = 1.0):
  """``evaluate(dec, images_u8) -> mean per-image loss`` over fixed crops,
  in batches of ``batch`` (the last one padded and masked); every process
  passes all the crops. ``placement``, ``divisor``: as
  :func:`make_train_step`'s (the params and ``enc.params`` placed by
  it)."""
  conv_impl = ConvPolicy.named(conv_impl)
  place = placement or Placement.one()

  def per_image(dec, enc_params, batch_u8):
    x = batch_u8.astype(jnp.float32) / 255.0
    y = reconstruct(dec, dataclasses.replace(enc, params=enc_params), spec, x,
                    conv_impl, divisor)
    return per_image_loss(y, x)

  losses = place.jit(per_image, 2)
  return lambda dec, images_u8: mean_over_batches(
      lambda b: losses(dec, enc.params, b), images_u8, batch, place)


def enable_compilation_cache() -> None:
  """Keeps compiled XLA programs on disk (``$RANDCONV_JAX_CACHE``, default
  ``jax/`` in the project's cache folder, :func:`settings.cache_folder`)
  so that a resumed or repeated run does not compile again; left alone
  when the user set JAX's own cache folder."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR") or \
      jax.config.jax_compilation_cache_dir:
    return
  path = settings.current().jax_cache or os.path.join(
      settings.cache_folder(), "jax")
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _progress(total: int, initial: int, desc: str, enabled: bool):
  from randconv import progress
  return progress.bar(total, desc, "step", enabled=enabled, initial=initial,
                      mininterval=1.0)


def open_run(cfg: TrainConfig, workdir: str | os.PathLike) -> RunDir:
  """The run folder of ``cfg``; the conv path changes only float rounding
  and speed, so a run may go on with another one."""
  try:
    return RunDir(workdir, cfg.as_dict(), may_differ=("conv_impl",))
  except WorkdirError as e:
    raise RunMismatch(str(e)) from None


def train_and_evaluate(cfg: TrainConfig, workdir: str | os.PathLike, *,
                       deadline: Deadline | None = None,
                       progress: bool | str = True,
                       threads: int = 1,
                       cache: features_lib.FeatureCache | None = None
                       ) -> RunResult:
  """Trains the decoder of ``cfg`` in ``workdir``, resuming if it holds a
  checkpoint; returns at once when the run is already done.

  Args:
    cfg: the run.
    workdir: its folder.
    deadline: the invocation's clock (:mod:`randconv.deadline`); between
      steps past it the run saves a checkpoint and stops
      (``RunResult.stopped``). None: no limit.
    progress: show a progress bar (a string is its label).
    threads: grain reader threads (0: read in the training thread).
    cache: with ``cfg.feature_cache``, the run's raw cached features when
      the caller built them (:func:`randconv.training.features.
      build_caches`: one encoder pass for several runs); None: built here.

  Raises:
    RunMismatch: the workdir holds a run with another config.
    TrainingDiverged: the loss became NaN or infinite; the last good
      checkpoint stays in the workdir.
    RandconvError: bad data or weights (one line).
  """
  place = Placement.for_batch(cfg.batch)
  run = open_run(cfg, workdir)
  spec = cfg.spec()
  spec.shapes(cfg.data.crop, cfg.data.crop)  # the crop fits the network
  enc = build_encoder(cfg, spec)
  optimizer = make_optimizer(cfg)
  dec = init_decoder(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 2), spec)
  opt_state = jax.jit(optimizer.init)(dec)
  manager = checkpoint_manager(run.path)
  start = int(distributed.agree_value(manager.latest_step() or 0))
  if start:
    dec, opt_state = restore_checkpoint(manager, start, dec, opt_state)
    dec = jax.tree_util.tree_map(jnp.asarray, dec)
    opt_state = jax.tree_util.tree_map(jnp.asarray, opt_state)
  summary = run.read_json("summary.json")
  if start >= cfg.steps and summary is not None:
    manager.close()
    return RunResult(run.path, cfg, run.records, dec, start, True,
                     summary=summary)
  truncate_metrics(run, start)
  label = progress if isinstance(progress, str) else \
      f"train {cfg.arch} {cfg.layer} {cfg.encoder}"
  programs = _programs(cfg, spec, enc, optimizer, place, bool(progress),
                       cache)
  loop = Loop(cfg, run, manager, programs, place.replicate(dec),
              place.replicate(opt_state),
              _progress(cfg.steps, start, label, bool(progress)), start,
              place, lr_schedule(cfg))
  try:
    step, stopped = loop.run(deadline or NO_DEADLINE, threads)
  finally:
    loop.bar.close()
    manager.close()
  return summarise(loop, step, stopped)


def _programs(cfg: TrainConfig, spec: NetSpec, enc: weights_lib.Encoder,
              optimizer, place: Placement, show: bool,
              cache: features_lib.FeatureCache | None = None
              ) -> Programs:
  """What a run's session runs: through the frozen encoder, or on its
  cached features (``cfg.feature_cache``; ``cache``: already built by the
  caller, raw)."""
  data = data_lib.load(cfg.data, cfg.batch)
  if not cfg.feature_cache:
    divisor = 1.0
    if cfg.feature_scale == "rms":
      encode = features_lib.encode_fn(spec, enc, ConvPolicy.named(cfg.impl))
      divisor = features_lib.rms_of(
          encode(enc.params, pad_rows(b, cfg.batch))[:len(b)]
          for b in _chunks(data.train_eval, cfg.batch))
    enc = dataclasses.replace(enc, params=place.replicate(enc.params))
    return Programs(
        make_train_step(spec, enc, optimizer, cfg.impl, place, divisor),
        make_eval(spec, enc, cfg.batch, cfg.impl, place, divisor), data,
        (enc.params,), divisor)
  if cache is None:
    cache = features_lib.build_cache(
        cfg.feature_cache, cfg.batch, spec, enc, data, cfg.impl,
        host=place.mesh is not None, show=show)
  features_lib.check_cache(cache, cfg)
  divisor = 1.0
  if cfg.feature_scale == "rms":
    divisor = features_lib.rms_of([cache.train_eval[0]])
    cache = cache.scaled(1.0 / divisor)
  return Programs(
      features_lib.make_cached_train_step(spec, optimizer, cfg.impl, place),
      features_lib.make_cached_eval(spec, cfg.batch, cfg.impl, place),
      cache, (), divisor)


def _chunks(rows, size: int):
  return (rows[i:i + size] for i in range(0, len(rows), size))


def load_run(workdir: str | os.PathLike) -> tuple[TrainConfig, NetSpec,
                                                  weights_lib.Encoder,
                                                  Params]:
  """The config, spec, encoder and latest decoder params of a run folder."""
  workdir = Path(workdir)
  if not (workdir / "config.json").exists():
    raise RandconvError(f"{workdir} holds no training run (no config.json)")
  cfg = config_from_dict(json.loads((workdir / "config.json").read_text()))
  spec = cfg.spec()
  enc = build_encoder(cfg, spec)
  dec = init_decoder(jax.random.PRNGKey(0), spec)
  optimizer = make_optimizer(cfg)
  manager = checkpoint_manager(workdir)
  step = manager.latest_step()
  if step is None:
    manager.close()
    raise RandconvError(f"{workdir} has no checkpoint yet")
  dec, _ = restore_checkpoint(manager, step, dec, jax.jit(optimizer.init)(dec))
  manager.close()
  return cfg, spec, enc, jax.tree_util.tree_map(jnp.asarray, dec)
