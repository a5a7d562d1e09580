"""Section 3 of the paper: decoders trained on random and pre-trained
encoders (Fig. 5, Fig. 6).

* :mod:`randconv.training.data`: the image pipeline (a tensorflow-datasets
  builder that packs photos into array_record, catalog datasets through
  ``tfds.data_source``, random crops and flips served by grain).
* :mod:`randconv.training.weights`: pre-trained encoder weights (HED, Keras,
  torchvision) turned into the library's params, with their preprocessing.
* :mod:`randconv.training.train`: the decoder's training loop (optax Adam,
  Caffe-style weight decay, orbax checkpoints, resume, divergence guard).
* :mod:`randconv.training.cli`: ``randconv features`` and ``randconv train``.
"""
