"""The Learnable Alignment Module itself, in plain torch: what retrieval and search run.

Training it (Lightning, DVCLive) is :mod:`newsimg.lam`; its folder format is
:mod:`newsimg.store.lam_files`. Nothing here imports Lightning.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from newsimg.errors import InputError
from newsimg.store import lam_files
from newsimg.store.lam_files import LamConfig  # lam.json's record, torch-free


class LAM(nn.Module):
    """New text projection + class-aware alignment: pooled text state (B, width) -> (B, dim).

    Built with the authors' initialisation (PyTorch's default ``Linear``, ``E = randn``);
    :func:`newsimg.lam.initialise` applies the other options of ``train``.
    """

    def __init__(self, config: LamConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.dim, len(config.classes)
        self.proj = nn.Linear(config.width, d)
        self.classifier = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, k))
        self.class_vectors = nn.Parameter(torch.randn(k, d))  # E
        self.alpha = nn.Parameter(torch.tensor(0.5))  # a

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (h: (B, dim), class logits: (B, classes))."""
        t = F.normalize(self.proj(hidden), dim=-1)
        logits = self.classifier(t)
        c = logits.softmax(dim=-1) @ self.class_vectors
        h = self.alpha * t + (1 - self.alpha) * c
        if self.config.renormalize:
            h = F.normalize(h, dim=-1)
        return h, logits


def save_lam(lam: LAM, out: Path) -> None:
    """``lam.safetensors`` + ``lam.json``, swapped in whole."""
    lam_files.write_lam(out, asdict(lam.config), lam.state_dict())


def load_lam(folder: Path) -> LAM:
    """The LAM saved in ``folder``, in eval mode; a missing or mismatched one is an error."""
    config, weights = lam_files.read_lam(folder)
    lam = LAM(LamConfig(**{**config, "classes": tuple(config["classes"])}))
    try:
        lam.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"{folder}: the weights do not fit lam.json: {err}") from None
    return lam.eval()
