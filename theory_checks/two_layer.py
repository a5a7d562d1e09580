"""Check T3: Theorem 5.2, the two-layer network: N E||y - y_hat||^2 /
||y_hat||^2 = pi - 1 at every width, and the Markov bound on sin(theta).
The derivation is in README.md beside this file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from randconv.deadline import NO_DEADLINE, Deadline
from theory_checks.common import CheckResult, plot_angles
from theory_checks.sweep import ROOT_SEEDS, Run

T3_Z_POOLED, T3_Z_EACH = 3.0, 4.0
T3_DELTAS = (0.1, 0.05, 0.01)
T3_TARGET = math.pi - 1      # N E||y - y_hat||^2 / ||y_hat||^2 (Theorem 5.2)


def two_layer_stats(y: np.ndarray, y_hat: np.ndarray) -> dict:
  """Per net and image: ||y - y_hat||^2 / ||y_hat||^2 and sin(theta).

  ``y``: [S, B, H, W]; ``y_hat``: [B, H, W] on the same (exact) scale.
  """
  from theory_checks.limits import angle
  err = np.sum((y - y_hat[None]) ** 2, axis=(-2, -1)) / np.sum(
      y_hat ** 2, axis=(-2, -1))[None]
  return {"rel_err": err, "sin": np.sin(angle(y, y_hat[None], axis=(-2, -1)))}


def t3(preset, workdir: Path, c1: float | None = None, *,
       deadline: Deadline = NO_DEADLINE) -> CheckResult:
  """T3: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 and the Markov bound.

  ``c1`` overrides the constant of the limit (tests pass a wrong one).
  """
  from randconv.spec import make_spec
  from theory_checks import limits
  run = Run.begin("T3", preset, workdir, deadline)
  p = run.p
  y_hat = run.limits(limits.energy_limit,
                     make_spec("vgg16", "conv1_1", output="mean"))
  if c1 is not None:
    y_hat = y_hat * (c1 / limits.C1)
  rows = _two_layer_sweep(run, run.config(seeds=p.t3_seeds, wrong_c1=c1),
                          y_hat)
  identity, identity_ok = _t3_identity(rows)
  quantiles, quantile_ok = _t3_quantiles(rows)
  measured = {
      "network": f"vgg16 conv1_1 (3x3 conv, N filters) + channel mean, "
                 f"{p.size}x{p.size}, {len(run.names)} inputs",
      "pi_minus_1": round(T3_TARGET, 5), **identity, **quantiles,
      "seeds_per_width": p.t3_seeds}
  return run.result(
      "two layers: N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1 at every N, and "
      "sin(theta) <= sqrt((pi - 1) / (N delta)) with probability >= 1 - delta",
      measured,
      f"pooled |z| <= {T3_Z_POOLED:g} and every width's |z| <= "
      f"{T3_Z_EACH:g} ({p.t3_seeds} nets per N); the empirical 1 - delta "
      f"quantile of sin(theta) <= the bound for delta in {list(T3_DELTAS)}, "
      "every N and image",
      identity_ok and quantile_ok,
      [_t3_figure(run, rows, quantiles["quantiles"])])


def _two_layer_sweep(run: Run, config: dict, y_hat: np.ndarray
                     ) -> dict[int, dict[str, np.ndarray]]:
  """T3's width sweep: per width the :func:`two_layer_stats` [S, B] of the
  library's two-layer nets at the exact scale, resumable."""
  from randconv import engine, progress
  from randconv.spec import make_spec
  from theory_checks import montecarlo as mc
  log = run.log(config)
  rows = {}
  for n in progress.iterate(run.p.t3_widths, "T3 widths", "width"):
    rec = log.find(width=n)
    if rec is None:
      mc.check_time(log, f"T3 width {n}")
      spec = make_spec("vgg16", "conv1_1", output="mean", width=n)
      # The library's net, exact scale: N(0, 1) weights, no rescaling. The
      # output conv is not normalised (the mean is its normalisation).
      net = engine.net_fn(spec, "gaussian:1.0", rescale=False,
                          policy="direct")
      out = mc.draw(lambda k, im: net(k, im)[..., 0], run.x, run.p.t3_seeds,
                    seed=ROOT_SEEDS["T3"], progress=f"T3 N={n}", spec=spec)
      st = two_layer_stats(out, y_hat)
      rec = log.append({"width": n, "rel_err": st["rel_err"].tolist(),
                        "sin": st["sin"].tolist()})
    rows[n] = {k: np.asarray(rec[k]) for k in ("rel_err", "sin")}
  return rows


def _t3_identity(rows: dict) -> tuple[dict, bool]:
  """Theorem 5.2's identity: per width and pooled over the widths, N times
  the mean relative error against pi - 1 in standard errors."""
  per_n, zs, est, var = {}, [], [], []
  for n, r in rows.items():
    v = n * r["rel_err"]                      # [S, B]
    m = float(v.mean())
    se = float(v.mean(axis=1).std(ddof=1) / math.sqrt(v.shape[0]))
    z = (m - T3_TARGET) / se
    zs.append(z)
    est.append(m)
    var.append(se ** 2)
    per_n[str(n)] = {"N_rel_err": round(m, 4), "se": round(se, 4),
                     "z": round(z, 2)}
  pooled = float(np.mean(est))
  pooled_se = float(math.sqrt(sum(var)) / len(var))
  pooled_z = (pooled - T3_TARGET) / pooled_se
  holds = abs(pooled_z) <= T3_Z_POOLED and all(
      abs(z) <= T3_Z_EACH for z in zs)
  return {"pooled_N_rel_err": round(pooled, 4),
          "pooled_se": round(pooled_se, 4), "pooled_z": round(pooled_z, 2),
          "per_width": per_n}, holds


def _t3_quantiles(rows: dict) -> tuple[dict, bool]:
  """The Markov bound: per delta and width the worst image's empirical
  1 - delta quantile of sin(theta) against sqrt((pi - 1) / (N delta))."""
  quant, worst_ratio, holds = {}, 0.0, True
  for n, r in rows.items():
    for d in T3_DELTAS:
      bound = math.sqrt(T3_TARGET / (n * d))
      q = np.quantile(r["sin"], 1 - d, axis=0)   # per image
      holds &= bool(np.all(q <= bound))
      worst_ratio = max(worst_ratio, float(np.max(q) / bound))
      quant.setdefault(str(d), {})[str(n)] = {
          "quantile_max": round(float(np.max(q)), 5),
          "bound": round(bound, 5),
          "bound_over_quantile": round(bound / float(np.max(q)), 2)}
  looseness = [v["bound_over_quantile"] for d in quant.values()
               for v in d.values()]
  return {"quantiles": quant,
          "worst_quantile_over_bound": round(worst_ratio, 3),
          "bound_looseness_range": [min(looseness), max(looseness)]}, holds


def _t3_figure(run: Run, rows: dict, quant: dict) -> Path:
  """Mean sin(theta) against width, with the bounds and the quantiles."""
  ws = sorted(rows)
  mean_sin = [float(rows[n]["sin"].mean()) for n in ws]
  se_sin = [float(rows[n]["sin"].mean(axis=1).std(ddof=1) /
                  math.sqrt(run.p.t3_seeds)) for n in ws]
  bounds = {}
  for d, colour in zip(T3_DELTAS, ("tab:orange", "tab:green", "tab:red")):
    bounds[f"bound sqrt((pi-1)/(N delta)), delta={d}"] = (
        ws, [math.sqrt(T3_TARGET / (n * d)) for n in ws],
        {"ls": "--", "color": colour, "lw": 1.2})
    bounds[f"empirical {1 - d:.2f} quantile (worst image)"] = (
        ws, [quant[str(d)][str(n)]["quantile_max"] for n in ws],
        {"ls": "-", "marker": "x", "ms": 3, "color": colour, "lw": 0.8})
  return plot_angles(run.workdir / "angles.png",
                     {"mean sin(theta)": (ws, mean_sin, se_sin)},
                     "T3 (Theorem 5.2): two-layer net, sin(theta) vs N",
                     bounds=bounds, ylabel="sin(theta)",
                     caption="T3: sin of the angle between the two-layer "
                     "net's output and its limit against N (log-log), mean "
                     "over nets and images, with Theorem 5.2's bound "
                     "(dashed) and the worst image's quantile (crosses) per "
                     "delta.")
