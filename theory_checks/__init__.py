"""Section 5 of He et al. (arXiv 1704.00330): the theory of random
convolution, checked numerically.

* :mod:`theory_checks.limits`: the limit image, by the L2 energy recursion
  (Theorem 5.1 / A.1) and the banded covariance recursion for average
  pooling (Theorem A.7).
* :mod:`theory_checks.routes`: the same limits by explicit route counts and
  the full covariance (small images).
* :mod:`theory_checks.montecarlo`: finite-width networks (an exact sampler
  and the library's own network) over seeds and widths.
* :mod:`theory_checks.checks`: every check by id (T1-T7) and the loop that
  runs them; :mod:`theory_checks.sweep`: the presets and the width sweep of
  T1-T6, whose checks are :mod:`theory_checks.convergence` (T1, T2),
  :mod:`theory_checks.two_layer` (T3), :mod:`theory_checks.depth` (T4),
  :mod:`theory_checks.bounds` (T5) and :mod:`theory_checks.max_pooling`
  (T6).
* :mod:`theory_checks.gp`, :mod:`theory_checks.t7`,
  :mod:`theory_checks.t7_cross`: the infinite-width law of the Figs. 8-9
  network with max pooling (check T7, an extension), on top of the
  library's :mod:`randconv.kernels`;
* :mod:`theory_checks.common`: what the checks share (inputs, fits, the
  result record).

The checks are registered through the ``randconv.experiments`` entry point
(``theory_checks.claims``), so importing this package loads nothing. See
README.md in this folder for the theorems and derivations.
"""
