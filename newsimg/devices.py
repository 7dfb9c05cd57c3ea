"""Whether a CUDA device is there, asked without importing torch where the answer is plainly no.

``torch.cuda.is_available()`` needs ``import torch`` (1.7 s on two cores), which a text search
on CPU otherwise never pays. On Linux a usable GPU needs its driver's device files (NVIDIA's
``/dev/nvidiactl`` or ``/dev/nvidia0``, AMD ROCm's ``/dev/kfd``, WSL2's ``/dev/dxg``) or
``/proc/driver/nvidia``; macOS has no CUDA. Without any of them the answer is False at once;
otherwise (or on another system, or once torch is imported anyway) torch is asked, so the
answer is always torch's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def cuda_possible() -> bool:
    """False only when this machine certainly has no CUDA (or ROCm) device torch could use."""
    if "torch" in sys.modules:
        return True  # asking torch costs nothing now
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(Path(p).exists() for p in DRIVER_FILES)
    return True


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch when :func:`cuda_possible` is
    False."""
    if not cuda_possible():
        return False
    import torch

    return torch.cuda.is_available()


def default_device(accelerator: str = "auto") -> str:
    """The device name to run on: ``cuda`` for ``gpu``, or for ``auto`` when CUDA is there;
    else ``cpu``."""
    if accelerator == "gpu" or (accelerator == "auto" and cuda_available()):
        return "cuda"
    return "cpu"
