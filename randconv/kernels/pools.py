"""Max and L2 pooling at infinite width: no closed form, so the kernel
after a pool is estimated from joint samples of the Gaussian pre-activation
(:func:`sampled_pool`), or, for its diagonal alone at any size, window by
window (:func:`window_pool_diag`); :mod:`randconv.kernels`."""

from __future__ import annotations

import functools
import math

import numpy as np

from randconv.kernels.maps import KernelError
from randconv.spec import Pool

POOL_SAMPLES = 1 << 16    # joint samples of a whole pre-pool map
WINDOW_SAMPLES = 1 << 16  # samples of each pool window (diagonal only)
CHUNK = 1024              # samples per batch (the standard error's unit)


def psd_root(s: np.ndarray) -> np.ndarray:
  """A square root R with ``R R^T = s`` (s positive semi-definite): Cholesky
  with a jitter of 1e-10 of the mean diagonal, raised until it succeeds."""
  scale = float(np.mean(np.diag(s))) or 1.0
  for jitter in (1e-10, 1e-8, 1e-6):
    try:
      return np.linalg.cholesky(s + jitter * scale * np.eye(len(s)))
    except np.linalg.LinAlgError:
      continue
  w, v = np.linalg.eigh(s)
  return v * np.sqrt(np.clip(w, 0, None))


def _key(key, i: int):
  """Pool i's sampling key: ``PRNGKey(key + i)`` for an int seed, else
  ``fold_in(key, i)``."""
  import jax
  if isinstance(key, (int, np.integer)):
    return jax.random.PRNGKey(int(key) + i)
  return jax.random.fold_in(key, i)


def sampled_pool(pre: np.ndarray, layer, in_hw, out_hw, *,
                 activation: str | None = "relu",
                 samples: int = POOL_SAMPLES, key=0,
                 chunk: int = CHUNK) -> tuple[np.ndarray, float]:
  """``E[pool(act(z)) pool(act(z))^T]`` for z ~ N(0, pre), drawn jointly
  over every image and pixel of ``pre`` [N, H, W, N, H, W].

  ``layer`` is a pool or a sequence of pools applied in turn (a pool's
  output is not Gaussian, so pools in a row are sampled together). The
  pools are the library's own op (:func:`randconv.ops.pool2d`), so ceil
  mode and the window match the network. Samples are drawn in float32
  batches of ``chunk``; the batch means give the standard error.

  Returns:
    (the kernel [N, H', W', N, H', W'] float64 at ``out_hw``, its relative
    standard error: the Frobenius norm of the entries' errors over the
    norm).
  """
  import jax
  import jax.numpy as jnp
  n_img = pre.shape[0]
  side = n_img * in_hw[0] * in_hw[1]
  root = jnp.asarray(psd_root(pre.reshape(side, side)), jnp.float32)
  p_out = n_img * out_hw[0] * out_hw[1]
  pools = tuple((l.pooling, l.window, l.stride, l.ceil_mode)
                for l in (layer if isinstance(layer, (list, tuple))
                          else [layer]))
  key = jax.random.PRNGKey(key) if isinstance(key, (int, np.integer)) \
      else key
  n = max(2, -(-samples // chunk))
  total = np.zeros((p_out, p_out))
  sq = np.zeros((p_out, p_out))
  for i in range(n):
    est = np.asarray(_pool_batch()(
        root, jax.random.fold_in(key, i), chunk=chunk,
        shape=(n_img,) + tuple(in_hw), pools=pools, activation=activation),
        np.float64)
    total += est
    sq += est * est
  mean = total / n
  var = np.clip(sq / n - mean * mean, 0, None) * n / (n - 1)
  rel_se = math.sqrt(float(np.sum(var)) / n) / float(np.linalg.norm(mean))
  return mean.reshape((n_img,) + tuple(out_hw) + (n_img,) +
                      tuple(out_hw)), rel_se


@functools.cache
def _pool_batch():
  """One batch's kernel estimate, compiled once per shape (the root is an
  argument, not a constant baked into the program)."""
  import jax
  import jax.numpy as jnp

  from randconv import ops

  def batch(root, key, *, chunk, shape, pools, activation):
    z = jnp.dot(root, jax.random.normal(key, (root.shape[1], chunk)),
                precision=jax.lax.Precision.HIGHEST)
    v = ops.activate(z.T.reshape(chunk * shape[0], *shape[1:], 1),
                     activation)
    for pool in pools:
      v = ops.pool2d(v, *pool)
    v = v.reshape(chunk, -1)
    return jnp.dot(v.T, v, precision=jax.lax.Precision.HIGHEST) / chunk

  return jax.jit(batch, static_argnames=("chunk", "shape", "pools",
                                         "activation"))


def window_pool_diag(pre_band: np.ndarray, layer: Pool, out_hw, *,
                     samples: int = WINDOW_SAMPLES, seed: int = 0,
                     chunk: int = 4096) -> tuple[np.ndarray, float]:
  """``E[pool(relu(z))(a)^2]`` per pool window a, z ~ N(0, S) on one map:
  the diagonal of :func:`sampled_pool`'s kernel, at any size.

  Only the window's own cells enter, so this needs the banded pre-activation
  kernel ``pre_band[i, j, dy, dx] = S((i, j), (i + dy, j + dx))`` with
  offsets up to ``window - 1``. Cells of a ceil-mode window past the edge
  are absent; a ReLU output is at least 0, so a zero stands in for them.
  Each batch uses the draws g and -g (antithetic pairs, unbiased, less
  variance).

  Returns:
    (the diagonal [H', W'], its relative standard error over the map).
  """
  h, w, by, bx = pre_band.shape
  cy, cx = (by - 1) // 2, (bx - 1) // 2
  win, st = layer.window, layer.stride
  if cy < win - 1 or cx < win - 1:
    raise KernelError(f"{layer.name}: the band must reach offset {win - 1}")
  ho, wo = out_hw
  cells = [(u, v) for u in range(win) for v in range(win)]
  a_y = np.arange(ho)[:, None] * st
  a_x = np.arange(wo)[None, :] * st
  m = len(cells)
  cov = np.zeros((ho, wo, m, m))
  inside = np.zeros((ho, wo, m), bool)
  for i, (u1, v1) in enumerate(cells):
    y1, x1 = a_y + u1, a_x + v1
    ok1 = (y1 < h) & (x1 < w)
    inside[..., i] = ok1
    for j, (u2, v2) in enumerate(cells):
      ok = ok1 & (a_y + u2 < h) & (a_x + v2 < w)
      val = pre_band[np.minimum(y1, h - 1), np.minimum(x1, w - 1),
                     cy + u2 - u1, cx + v2 - v1]
      cov[..., i, j] = np.where(ok, val, 0.0)
  diag = np.diagonal(cov, axis1=-2, axis2=-1)
  scale = max(float(diag[inside].mean()), 1e-300)
  absent = ~inside[..., None, :] & ~inside[..., :, None]
  cov = (cov + scale * np.eye(m) * absent) / scale  # absent: unit, masked
  root = np.linalg.cholesky(cov + 1e-10 * np.eye(m))
  # A batch holds [H', W', m, chunk] float32 draws: at most 2^24 of them.
  chunk = max(256, min(chunk, (1 << 24) // (ho * wo * m)))
  n = max(2, -(-samples // (2 * chunk)))
  est = np.stack([np.asarray(b, np.float64) for b in _window_batches(
      root.astype(np.float32), inside, layer.pooling, chunk, n, seed)])
  est *= scale
  mean = est.mean(0)
  se = est.std(0, ddof=1) / math.sqrt(len(est))
  return mean, float(np.linalg.norm(se) / np.linalg.norm(mean))


def _window_batches(root, inside, pooling: str, chunk: int, n: int,
                    seed: int):
  """``n`` batch estimates [H', W'] of E[pool(relu(z))^2], each over
  ``chunk`` antithetic pairs (z = root g and -root g)."""
  import jax
  import jax.numpy as jnp
  inside = jnp.asarray(inside, jnp.float32)[..., None]    # [H', W', m, 1]
  key = jax.random.PRNGKey(seed)
  return [_window_batch()(root, inside, jax.random.fold_in(key, i),
                          chunk=chunk, pooling=pooling) for i in range(n)]


@functools.cache
def _window_batch():
  import jax
  import jax.numpy as jnp

  def batch(root, inside, key, *, chunk, pooling):
    count = jnp.maximum(inside.sum(-2), 1.0)                # [H', W', 1]
    reduce = {"max": lambda a: a.max(-2),
              "avg": lambda a: a.sum(-2) / count,
              "l2": lambda a: jnp.sqrt((a * a).sum(-2))}[pooling]
    g = jax.random.normal(key, root.shape[:-1] + (chunk,))
    z = jnp.einsum("abij,abjc->abic", root, g,
                   precision=jax.lax.Precision.HIGHEST)
    sq = [reduce(jnp.maximum(sign * z, 0.0) * inside) ** 2
          for sign in (1.0, -1.0)]
    return 0.5 * (sq[0] + sq[1]).mean(-1)

  return jax.jit(batch, static_argnames=("chunk", "pooling"))
