"""GPU paths (skipped where no CUDA device is visible; CI has none)."""

import numpy as np
import pytest
import torch

from reelbeam.models.transnetv2 import TransNetV2ModelHandler, load_transnetv2, make_windows

pytestmark = pytest.mark.gpu


def test_transnetv2_on_cuda_matches_cpu_and_batches_across_windows():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (230, 27, 48, 3), dtype=np.uint8)
    frames[120:] //= 3
    windows = list(make_windows(frames))
    cpu = TransNetV2ModelHandler(device="cpu")
    gpu = TransNetV2ModelHandler(device="cuda", max_batch_size=64)
    a = [r.inference for r in cpu.run_inference(windows, load_transnetv2(device="cpu"))]
    b = [r.inference for r in gpu.run_inference(windows, load_transnetv2(device="cuda"))]
    # TF32 convolutions move results by ~1e-3 (reference/NOTES.md).
    assert np.abs(np.stack(a) - np.stack(b)).max() < 5e-3
    bf16 = TransNetV2ModelHandler(device="cuda", precision="bf16")
    c = [r.inference for r in bf16.run_inference(windows, load_transnetv2(device="cuda"))]
    assert np.abs(np.stack(a) - np.stack(c)).max() < 5e-2


def test_bassl_on_cuda_matches_cpu():
    from reelbeam.models.bassl import BaSSL

    torch.manual_seed(0)
    model = BaSSL().eval()
    x = torch.randn(2, 3, 3, 224, 224)
    feats = model.encode_shots(x)
    windows = feats[torch.from_numpy(np.clip(np.arange(-8, 9)[None] + np.arange(2)[:, None], 0, 1))]
    p_cpu = model.score_windows(windows)
    model = model.cuda()
    p_gpu = model.score_windows(windows.cuda()).cpu()
    assert (p_cpu - p_gpu).abs().max() < 1e-2


def test_cmd_embeddings_on_cuda_match_cpu(tmp_path):
    from reelbeam.models.r2plus1d import CMDEmbeddingHandler, R2Plus1D26, save_modelscope_layout

    torch.manual_seed(0)
    path = str(tmp_path / "pytorch_model.pt")
    save_modelscope_layout(R2Plus1D26().eval(), path)
    clips = list(np.random.default_rng(0).standard_normal((3, 3, 16, 112, 112)).astype(np.float32))
    results = {}
    for device, precision in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")):
        handler = CMDEmbeddingHandler(path, device=device, precision=precision, max_batch_size=3)
        results[device, precision] = np.stack([r.inference for r in handler.run_inference(clips, handler.load_model())])
    cpu = results["cpu", "fp32"]
    scale = np.abs(cpu).max()
    # TF32 convolutions move results by ~1e-3 (reference/NOTES.md); bf16 by ~1e-2 relative.
    assert np.abs(results["cuda", "fp32"] - cpu).max() < 5e-3 * scale
    assert np.abs(results["cuda", "bf16"] - cpu).max() < 5e-2 * scale
