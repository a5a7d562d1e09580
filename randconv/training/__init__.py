"""Section 3 of the paper: decoders trained on random and pre-trained
encoders (Fig. 5, Fig. 6).

* :mod:`randconv.training.data`: the image pipeline (a tensorflow-datasets
  builder that packs photos into array_record, catalog datasets through
  ``tfds.data_source``, random crops and flips served by grain).
* :mod:`randconv.training.weights`: pre-trained encoder weights (HED, Keras,
  torchvision) turned into the library's params, with their preprocessing.
* :mod:`randconv.training.train`: a decoder's training run (optax Adam,
  Caffe-style weight decay, orbax checkpoints, resume).
* :mod:`randconv.training.loop`: one session of a run: the steps, and the
  evaluations, checkpoints and records between them (divergence guard,
  deadline).
* :mod:`randconv.training.features`: the frozen encoder's features of a
  fixed set of crops, computed once, and the training step on them.
* :mod:`randconv.training.objective`: the decoder and its loss, shared by
  both ways of training.
* :mod:`randconv.training.fetch`: the HED weights file into the cache.

The commands (``randconv features``, ``train``, ``weights``) are the
harness's, :mod:`randconv.repro.training_cli`.
"""
