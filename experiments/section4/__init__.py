"""Section 4 of the paper: fully random CNN-DCN ("rrVGG") experiments S4a-S4f.

Commands (their wall times: docs/performance.md):

  randconv reproduce --preset quick --only S4a S4b S4c S4d S4e S4f --out DIR
  randconv reproduce --preset cpu   --only S4a S4b S4c S4d S4e S4f --out DIR
      # with T7's predictions and the sensitivity rows
  RANDCONV_TIME_BUDGET_S=480 randconv reproduce --preset paper \\
      --only S4c S4d --out DIR        # one GPU; stops cleanly between cells

Three experiments (:mod:`.claims`, whose :data:`EXPERIMENTS` this package
gives the ``randconv.experiments`` entry point), each in ``OUT/<name>/``
(config.json, metrics.jsonl cell by cell, figures; a re-run resumes):

* ``fig7`` (S4a, S4b; :mod:`.fig7`): the cat through rrVGG Conv1..Conv5
  and through the simplified ConvK nets, several nets; SSIM, |r| and the
  edge correlation of the cat, against a chance level made of the same
  nets' outputs for other images; each net's infinite-width law beside it
  (:mod:`.law`).
* ``conv1_width_sweep`` (S4c, S4d, S4e; :mod:`.width`): rrVGG truncated at
  pool1 (docs/design.md §1) with the original output and the channel-mean
  output, width 4, 8, ...; per net the mean SSIM and mean |r| over the
  images, then mean and std over the nets (Figs. 8, 9); Fig. 10 from the
  same nets; T7's infinite-width prediction per image beside them.
* ``kernel_sweep`` (S4f; :mod:`.kernel`): rrVGG Conv1_1-DeConv1_1 with
  kernel 1, 3, 5, ...

At the cpu preset, S4a and S4c also get their sensitivity rows
(:mod:`.sensitivity`). What they share: the configs (:mod:`.configs`), the
cells (:mod:`.cells`), the decision rules (:mod:`.rules`), the images
(:mod:`.data`) and the figures (:mod:`.plots`).

Presets (``configs.OVERRIDES`` of the config dataclasses; the tests shrink
them further with field overrides), as fig7 / width sweep / kernel sweep:

* quick: 64 px, 2 nets, 2 others / 32 px, widths 4, 16, 64, 3 nets x 4
  images / 32 px, kernels 1-7, 3 nets x 4 images;
* cpu: 227 px, 6 nets, 3 others / 64 px, widths 4-1024, 10 nets x 16 images
  / 128 px, kernels 1-15, 10 nets x 20 images;
* paper: 227 px, 30 nets, 8 others / 227 px, widths 4-2048, 30 nets x 50
  images / 227 px, kernels 1-15, 30 nets x 50 images.

Weights: Gaussian(0, 0.015), plain ReLU, no biases (docs/design.md §3-4);
outputs rescaled between layers (homogeneous nets, docs/design.md §4).
Images: the offline photos and their crops (:mod:`.data`) for
tiny/quick/cpu; for paper, tfds ImageNet validation, a folder, or the
photos.
"""

from experiments.section4.claims import EXPERIMENTS

__all__ = ["EXPERIMENTS"]
