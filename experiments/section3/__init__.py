"""Section 3 of the paper: decoders trained on random and pre-trained
encoders, S3a-S3g (Fig. 5, the generalization and reconstruction figures,
Fig. 6).

Commands (docs/section3.md has the protocol, the pilot and their measured
times):

  randconv reproduce --preset quick --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --only S3a S3b S3c S3d S3e S3f S3g --out DIR
  randconv reproduce --preset cpu --weights alexnet-owt-7be5be79.pth --out DIR
  RANDCONV_TIME_BUDGET_S=480 randconv reproduce --preset paper --only S3a \\
      --out DIR        # one GPU, ImageNet through tfds; stops with a checkpoint

Every claim is its own registered experiment, but they share their
training runs (:mod:`.runs`): each run (arch, layer,
encoder, distribution, seed, feature reading) trains once in
``OUT/section3_runs/<preset>/<run>/`` and resumes when the command is run
again. Figures go to each experiment's folder.

The protocol (docs/section3.md): 64 px crops at the cpu preset (AlexNet's
Conv3-5 maps are 3x3 there; VGG and AlexNet at the same size), decoders on
cached features, Adam at a constant rate until 80% of each layer's step
budget (chosen from a pilot), 3 seeds. Claims that compare encoders or
distributions read ``rms`` features (each encoder's and layer's features
divided by their RMS over the training crops: a scalar changes no
information); the paper's raw reading is each claim's sensitivity row,
decided by the same rule. S3b and S3g's badly scaled sigmas are claims
about scale and stay raw. A claim is decided only when every deciding run
converged and learned (:data:`.runs.CONVERGENCE_RULE`); the rules below
hold "in every seed" unless said.

* S3a: random < pre-trained at the end (final training loss) and on the
  smoothed curve at 10%, 25% and 50% of the steps, for VGG and for AlexNet;
  the mean relative gap larger on VGG; random VGG < random AlexNet and
  pre-trained VGG < pre-trained AlexNet. Without AlexNet ImageNet weights
  the VGG half (VGG's random < pre-trained, random VGG < random AlexNet) is
  decided and said so; the claim stays "needs weights".
* S3b (raw): the first losses span more than a factor 2, the final losses
  lie within a factor 10, and every sigma's decoder learned (one that
  cannot use its features is the scale's effect: it counts against).
* S3c: the four final losses lie within a factor 1.25.
* S3d: at every layer random VGG's validation and training-set losses are
  below pre-trained VGG's; the mean val(Conv5) / val(Conv1) is larger for
  the pre-trained VGG; |val - train| / train <= 0.3 for every run.
* S3e: at Conv3 AlexNet's |val - train| / train <= 0.3 (random and
  pre-trained) and its |pre - random| / random validation gap <= 0.2.
* S3f: mean SSIM over three held-out images (the cat first), averaged over
  seeds, falls from Conv1 to Conv5 and never rises by more than 0.02 per
  layer, for VGG and AlexNet; VGG's SSIM above AlexNet's at every layer.
* S3g: the four paper-scale distributions' SSIMs on the cat lie within
  0.05 of each other, and a badly scaled Gaussian (raw, sigma 0.001 or 1)
  is more than 0.05 below all four.
"""

from experiments.section3 import curves, generalization, pictures  # noqa: F401,E501 - they register their claims
from experiments.section3.reading import EXPERIMENTS

__all__ = ["EXPERIMENTS"]
