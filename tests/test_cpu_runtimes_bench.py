"""bench/cpu_runtimes.py (OpenVINO for TransNetV2, issue #24 item 6): its histogram formulation
without `torch.bincount` equals the model's own, its exportable model equals the model, and
without OpenVINO it exits with a message instead of a traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import cpu_runtimes

from reelbeam.models.transnetv2 import _ColorHistograms, load_transnetv2


@pytest.fixture(scope="module")
def model():
    return load_transnetv2()


def _frames(kind: str) -> torch.Tensor:
    shape = (2, 7, 27, 48, 3)
    if kind == "random":
        return torch.from_numpy(np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8))
    if kind == "bin_edges":  # every value next to a bin edge (31/32, 63/64, ..., 255)
        edges = np.array([0, 31, 32, 63, 64, 95, 96, 127, 128, 159, 160, 191, 192, 223, 224, 255], np.uint8)
        return torch.from_numpy(np.random.default_rng(4).choice(edges, shape))
    value = {"black": 0, "white": 255}[kind]
    return torch.full(shape, value, dtype=torch.uint8)  # one bin holds every pixel


@pytest.mark.parametrize("kind", ["random", "bin_edges", "black", "white"])
def test_scatter_histograms_equal_the_bincount_ones(kind):
    frames = _frames(kind)
    want = _ColorHistograms.histograms(frames)
    got = cpu_runtimes.scatter_histograms(frames)
    assert got.shape == want.shape == (2, 7, 512) and got.dtype == want.dtype
    assert float((got - want).abs().max()) <= 1e-6


def test_exportable_model_gives_both_heads_as_the_model(model):
    frames = _frames("random")[:1]
    with torch.inference_mode():
        want = model(frames, 2)
        got = cpu_runtimes.exportable(model)(frames)
    assert float((got - want).abs().max()) <= 1e-6
    assert model.color_hist_layer.histograms is _ColorHistograms.histograms  # the original is untouched


def test_without_openvino_the_bench_exits_with_a_message(tmp_path):
    # `import openvino` fails as where it is not installed, whether or not it is here.
    code = ("import runpy, sys; sys.modules['openvino'] = None; "
            f"sys.argv = ['cpu_runtimes.py', '--out', {str(tmp_path / 'out.json')!r}]; "
            f"runpy.run_path({os.path.join(BENCH, 'cpu_runtimes.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "OpenVINO, which is not installed" in proc.stderr and "pip install openvino" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out.json").exists()


def test_openvino_gives_the_models_probabilities(model):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (optional: `pip install openvino`)")
    window = np.random.default_rng(5).integers(0, 256, (100, 27, 48, 3), dtype=np.uint8)
    compiled = cpu_runtimes.compile_openvino(cpu_runtimes.convert_openvino(model, torch.from_numpy(window[None])))
    want = model.predict_windows(torch.from_numpy(window[None]), 2)[0].numpy()
    got = cpu_runtimes.openvino_predict(compiled, window)
    assert got.shape == want.shape == (50, 2)
    assert float(np.abs(got - want).max()) <= 1e-5
