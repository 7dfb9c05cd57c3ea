"""Logging for every newsimg process, and third-party chatter silenced at its source.

``make repro`` should read like one program: newsimg's own log lines and progress bars. Each
function below turns off one named piece of another library's output (a logger, a progress bar,
one deprecation warning by its message), never warnings or logging wholesale.
"""

from __future__ import annotations

import logging
import warnings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT, force=True)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing chatter


def quiet_lightning() -> None:
    """Lightning's per-Trainer banners ("GPU available: False, used: False", "TPU available",
    "💡 Tip: ... litlogger") are INFO lines of its rank-zero logger; its warnings still show.
    Its own pytree copy trips torch's ``LeafSpec`` deprecation on every fit: that one message
    from that one module is ignored."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"pytorch_lightning\.utilities\._pytree",
    )


def quiet_transformers() -> None:
    """transformers' "Loading weights" bar on every model load (a local folder: nothing to wait
    for). Hugging Face Hub download bars stay on."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # also turns the Hub's bars off: turned back on below
    enable_progress_bars()
