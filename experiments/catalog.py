"""The paper's claims that ``randconv reproduce`` checks, and our extensions.

``randconv reproduce`` reads this table through the ``randconv.claims``
entry point (pyproject.toml); the experiments that decide the claims
register through ``randconv.experiments`` (:mod:`experiments.section3`,
:mod:`experiments.section4`, :mod:`theory_checks.claims`). How each claim is
decided: docs/reproduction.md.
"""

from __future__ import annotations

from randconv.repro.registry import Claim

# id -> (section, what, claim); the paper's claims (docs/reproduction.md).
CATALOG: dict[str, tuple[str, str, str]] = {
    "S3a": ("3", "Fig. 5a: Conv2-DeConv2 loss, VGG vs AlexNet, random vs "
            "pre-trained", "random converges faster and to a slightly lower "
            "loss than pre-trained, most clearly on VGG; VGG's loss is lower "
            "than AlexNet's"),
    "S3b": ("3", "Fig. 5b: random VGG Conv2, several Gaussian sigmas",
            "the initial losses differ; the final losses reach the same "
            "magnitude"),
    "S3c": ("3", "Fig. 5c: gaussian, uniform, logistic, laplace",
            "similar final losses"),
    "S3d": ("3", "train vs validation loss, Conv1..Conv5, random and "
            "pre-trained VGG", "random VGG's loss is lower at every layer; "
            "pre-trained VGG's loss grows much faster with depth; train and "
            "validation losses are close"),
    "S3e": ("3", "Conv3: VGG vs AlexNet, random vs pre-trained",
            "AlexNet generalizes too; its random/pre-trained gap is small"),
    "S3f": ("3", "reconstructions, Conv1..Conv5 of random VGG and AlexNet",
            "quality decays with depth; VGG beats AlexNet, even at Conv5"),
    "S3g": ("3", "Fig. 6: the cat through random VGG Conv2 per distribution",
            "all look alike except a badly scaled one"),
    "S4a": ("4", "Fig. 7 row 1: the cat through rrVGG Conv1..Conv5",
            "quality decays with depth; contours visible for Conv1..Conv3, a "
            "rough contour at Conv4"),
    "S4b": ("4", "Fig. 7 row 2: simplified ConvK nets",
            "quality similar to row 1: width matters, depth little"),
    "S4c": ("4", "Figs. 8, 9 (a): rrVGG Conv1-DeConv1 width sweep",
            "quality rises with the width"),
    "S4d": ("4", "Figs. 8, 9 (b): the same with the channel-mean output",
            "the rise and its convergence are clearer; the std shrinks"),
    "S4e": ("4", "Fig. 10: outputs closest to the mean SSIM",
            "the pictures sharpen as the width grows"),
    "S4f": ("4", "Section 4.3: Conv1_1-DeConv1_1 against its kernel size",
            "SSIM falls as the kernel grows"),
    "T1": ("5", "angle to the L2 limit vs width",
           "the angle shrinks at the N^(-1/2) rate"),
    "T2": ("5", "angle to the average-pooling limit vs width",
           "the angle shrinks at the N^(-1/2) rate"),
    "T3": ("5", "Theorem 5.2, two layers",
           "N E||y - y_hat||^2 / ||y_hat||^2 = pi - 1; sin(theta) <= "
           "sqrt((pi - 1) / (N delta)) with probability 1 - delta"),
    "T4": ("5", "Theorem 5.3, many layers",
           "the angle shrinks like N^(-1/2) and grows with depth"),
    "T5": ("5", "Theorem 5.4, input vs limit",
           "cos(alpha) >= 1 - <x, Delta>/||x||^2 >= 1 - ||Delta||/||x||; "
           "cos(alpha) falls as the kernel grows"),
    "T6": ("5", "max-pooling channel-mean net vs the L2 limit",
           "the angle falls far below the input-limit angle as the width "
           "grows"),
    "T7": ("5, extension", "the infinite-width law of the Figs. 8-9 "
           "network (max pooling)",
           "the conv output converges to a Gaussian process, the channel "
           "mean to a fixed image; the kernel at the N^(-1/2) rate, SSIM "
           "and |r| in distribution, Fig. 8's plateaus as predicted"),
}
# Checks beyond the paper's own claims (the report marks them).
EXTENSIONS = frozenset({"T7"})

# The paper's place for each claim.
PAPER_REF = {
    "S3a": "Sec. 3, Fig. 5(a)", "S3b": "Sec. 3, Fig. 5(b)",
    "S3c": "Sec. 3, Fig. 5(c)", "S3d": "Sec. 3.2", "S3e": "Sec. 3.2",
    "S3f": "Sec. 3.3", "S3g": "Sec. 3.3, Fig. 6",
    "S4a": "Sec. 4.1, Fig. 7 row 1", "S4b": "Sec. 4.1, Fig. 7 row 2",
    "S4c": "Sec. 4.2, Figs. 8-9 (a)", "S4d": "Sec. 4.2, Figs. 8-9 (b)",
    "S4e": "Sec. 4.2, Fig. 10", "S4f": "Sec. 4.3",
    "T1": "Sec. 5, Thm 5.1 / A.1", "T2": "App. A, Thm A.7",
    "T3": "Sec. 5, Thm 5.2 / A.3", "T4": "Sec. 5, Thm 5.3 / A.5",
    "T5": "Sec. 5, Thm 5.4 / A.6", "T6": "Sec. 5 vs Figs. 8-9",
    "T7": "extends Sec. 5 to Figs. 8-10",
}


CLAIMS = tuple(Claim(i, section, title, claim, PAPER_REF[i], i in EXTENSIONS)
               for i, (section, title, claim) in CATALOG.items())
