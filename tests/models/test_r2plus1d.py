"""CMD R(2+1)D-26: the published key layout, loading and its errors, clip sampling, and embeddings
against a literal reimplementation of the reference (Hara's resnet2p1d module structure, the
ModelScope pipeline's PIL preprocessing, sampling and clip mean) with the same weights."""

import math
import pickle

import fsspec
import numpy as np
import pytest
import synthetic
import torch
import torchvision.transforms.functional as TF
from model_init import randomised
from PIL import Image
from torch import nn

from reelbeam.models.checkpoints import CheckpointError
from reelbeam.models.r2plus1d import (
    CMDEmbeddingHandler,
    R2Plus1D26,
    check_checkpoint,
    clip_tensor,
    expected_shapes,
    load_r2plus1d,
    resize_clip_frame,
    save_modelscope_layout,
    shot_clip_indices,
    video_clip_indices,
    video_embedding,
)

# ------------------------------------------------------------------------------------------------
# The reference, written out in its own style: Kensho Hara's resnet2p1d structure as ModelScope's
# cmdssl_video_embedding ships it (resnet26_2p1d(num_classes=None, last_pool=True)), and the
# CMDSSLVideoEmbeddingPipeline's preprocess (decord frames -> PIL) and forward.


def conv1x3x3(in_planes, out_planes, stride=1):
    return nn.Conv3d(
        in_planes,
        out_planes,
        kernel_size=(1, 3, 3),
        stride=(1, stride, stride),
        padding=(0, 1, 1),
        bias=False,
    )


def conv3x1x1(in_planes, out_planes, stride=1):
    return nn.Conv3d(
        in_planes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False
    )


def conv1x1x1(in_planes, out_planes, stride=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class RefBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1x1(inplanes, width)
        self.bn1 = nn.BatchNorm3d(width)
        midplanes = (width * width * 3 * 3 * 3) // (width * 3 * 3 + width * 3)
        self.conv2_s = conv1x3x3(width, midplanes, stride)
        self.bn2_s = nn.BatchNorm3d(midplanes)
        self.conv2_t = conv3x1x1(midplanes, width, stride)
        self.bn2_t = nn.BatchNorm3d(width)
        self.conv3 = conv1x1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.relu(self.bn2_t(self.conv2_t(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class RefResNet2p1d(nn.Module):
    def __init__(self, block, layers):
        super().__init__()
        self.inplanes = 64
        midplanes = (3 * self.inplanes * 3 * 7 * 7) // (3 * 7 * 7 + self.inplanes * 3)
        self.conv1_s = nn.Conv3d(
            3, midplanes, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
        )
        self.bn1_s = nn.BatchNorm3d(midplanes)
        self.conv1_t = nn.Conv3d(
            midplanes, self.inplanes, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False
        )
        self.bn1_t = nn.BatchNorm3d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm3d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        x = self.relu(self.bn1_t(self.conv1_t(x)))
        x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def reference_indices(num_frames, multi_crop=10, video_frames=16, video_stride=4):
    clip_len = (video_frames - 1) * video_stride + 1
    if num_frames <= clip_len:
        init_frames = np.zeros(multi_crop, dtype=int)
    else:
        init_frames = np.linspace(0, num_frames - clip_len, multi_crop + 1)
        init_frames = ((init_frames[1:] + init_frames[:-1]) / 2.0).astype(int)
    indices = np.arange(0, clip_len, video_stride)
    indices = (init_frames[:, None] + indices[None, :]).reshape(-1)
    indices[indices >= num_frames] = 0
    return indices


def reference_clip(frames):
    """VRescale(128) -> VCenterCrop(112) -> VToTensor -> VNormalize(ImageNet) on PIL images."""
    vclip = [Image.fromarray(f) for f in frames]
    w, h = vclip[0].size
    scale = 128 / min(w, h)
    out_w, out_h = int(round(w * scale)), int(round(h * scale))  # noqa: RUF046 (as the reference)
    vclip = [u.resize((out_w, out_h), Image.BILINEAR) for u in vclip]
    w, h = vclip[0].size
    assert min(w, h) >= 112
    x1, y1 = (w - 112) // 2, (h - 112) // 2
    vclip = [u.crop((x1, y1, x1 + 112, y1 + 112)) for u in vclip]
    vclip = torch.stack([TF.to_tensor(u) for u in vclip], dim=1)
    assert vclip.min() > -0.1 and vclip.max() < 1.1
    vclip = vclip.clone()
    mean = vclip.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1, 1)
    std = vclip.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1, 1)
    return vclip.sub_(mean).div_(std)


def reference_embedding(model, video_frames, multi_crop):
    """The pipeline's preprocess + forward: all clip frames read at once, split into clips,
    transformed, one batch, mean over clips."""
    indices = reference_indices(len(video_frames), multi_crop)
    batch = torch.from_numpy(np.stack([video_frames[i] for i in indices])).chunk(multi_crop, dim=0)
    clips = torch.stack([reference_clip(list(u.numpy())) for u in batch], dim=0)
    with torch.no_grad():
        feats = model(clips)
    return feats.mean(0).numpy(), feats.numpy()


# ------------------------------------------------------------------------------------------------


def fan_in_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Conv weights N(0, 1/fan_in) (reference/NOTES.md: N(0, 0.02) would wash the input out) plus
    random BatchNorm statistics and affines."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            m.weight.data = torch.randn(m.weight.shape, generator=g) / math.sqrt(m.weight[0].numel())
    return randomised(model, seed)


@pytest.fixture(scope="module")
def model():
    return fan_in_weights(R2Plus1D26())


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cmd") / "pytorch_model.pt"
    save_modelscope_layout(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def video_frames():
    """100 frames of 3 shots at an odd size (rounding of the resize, floor of the crop offset)."""
    return list(synthetic.shot_frames([40, 30, 30], 250, 141, seed=3))


# --- layout and loading ---------------------------------------------------------------------------


def test_key_layout_is_the_published_one():
    shapes = expected_shapes()
    assert len(shapes) == 228  # 54 convs + 58 BNs x 5 (weight, bias, running stats, batches)
    assert shapes["conv1_s.weight"] == (83, 3, 1, 7, 7) and shapes["conv1_t.weight"] == (64, 83, 3, 1, 1)
    for layer, (w, m, first_in) in enumerate(
        [(64, 144, 64), (128, 288, 256), (256, 576, 512), (512, 1152, 1024)], 1
    ):
        for b, cin in ((0, first_in), (1, 4 * w)):
            p = f"layer{layer}.{b}."
            assert shapes[p + "conv1.weight"] == (w, cin, 1, 1, 1)
            assert shapes[p + "conv2_s.weight"] == (m, w, 1, 3, 3) and shapes[p + "bn2_s.running_var"] == (m,)
            assert shapes[p + "conv2_t.weight"] == (w, m, 3, 1, 1) and shapes[p + "bn2_t.weight"] == (w,)
            assert (
                shapes[p + "conv3.weight"] == (4 * w, w, 1, 1, 1)
                and shapes[p + "bn3.num_batches_tracked"] == ()
            )
        assert shapes[f"layer{layer}.0.downsample.0.weight"] == (4 * w, first_in, 1, 1, 1)
        assert f"layer{layer}.0.downsample.1.running_mean" in shapes
        assert not any(k.startswith(f"layer{layer}.1.downsample") for k in shapes)
    assert not any(k.startswith(("fc.", "avgpool", "dropout")) for k in shapes)
    params = sum(
        math.prod(s) for k, s in shapes.items() if k.endswith(("weight", "bias")) and "running" not in k
    )
    assert params == 26_507_471  # the spec's ~26.51 M


def test_a_hara_structured_model_takes_the_same_file_strictly(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    RefResNet2p1d(RefBottleneck, [2, 2, 2, 2]).load_state_dict(state, strict=True)


@pytest.mark.parametrize("url", ["local", "file", "memory"])
def test_checkpoint_loads_from_local_and_fsspec_paths(model, checkpoint, url):
    path = {"local": checkpoint, "file": f"file://{checkpoint}", "memory": "memory://cmd/pytorch_model.pt"}[
        url
    ]
    if url == "memory":
        with fsspec.open(path, "wb") as f, open(checkpoint, "rb") as src:
            f.write(src.read())
    check_checkpoint(path)
    loaded = load_r2plus1d(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def _save(state, path):
    torch.save(state, path)
    return str(path)


def test_wrong_layouts_name_the_file_and_the_keys(model, tmp_path):
    state = model.state_dict()
    cases = {
        "dataparallel.pt": (
            {f"module.{k}": v for k, v in state.items()},
            ["228 missing (e.g. ", "228 unexpected (e.g. module.", "'module.': a DataParallel training state"],
        ),
        "finetuned.pt": (
            {**state, "fc.weight": torch.zeros(101, 2048), "fc.bias": torch.zeros(101)},
            ["2 unexpected (e.g. fc.bias, fc.weight)", "classifier"],
        ),
        "r3d.pt": (
            {**state, "conv1_s.weight": torch.zeros(64, 3, 3, 7, 7)},
            ["1 with other shapes (e.g. conv1_s.weight: (64, 3, 3, 7, 7) instead of (83, 3, 1, 7, 7))"],
        ),
        "truncated.pt": (
            {k: v for k, v in state.items() if not k.startswith("layer4.1.")},
            ["24 missing (e.g. layer4.1.bn1.bias, "],
        ),
    }
    for name, (bad, expected) in cases.items():
        path = _save(bad, tmp_path / name)
        for check in (load_r2plus1d, check_checkpoint):
            with pytest.raises(CheckpointError) as e:
                check(path)
            message = str(e.value)
            assert "\n" not in message and path in message and "R(2+1)D-26" in message, message
            for part in expected:
                assert part in message, (name, message)


def test_missing_file_and_code_pickles_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        check_checkpoint(str(tmp_path / "nope.pt"))
    path = tmp_path / "code.pt"
    torch.save({"w": torch.zeros(1), "f": np.random.default_rng}, path)
    with pytest.raises(CheckpointError, match="not a plain weights file"):
        check_checkpoint(str(path))


# --- clip sampling --------------------------------------------------------------------------------

STRIDE_4 = np.arange(0, 61, 4)


@pytest.mark.parametrize(
    "num_frames, starts, padded",
    [
        (1, [0] * 10, 15),  # every index but 0 is past the end -> frame 0
        (30, [0] * 10, 8),  # 0..28 exist, 32..60 -> frame 0
        (61, [0] * 10, 0),  # exactly one clip span
        (62, [0] * 10, 0),  # bins of [0, 1]: midpoints 0.05..0.95 -> 0
        (100, [1, 5, 9, 13, 17, 21, 25, 29, 33, 37], 0),  # bins of 3.9 over [0, 39]
        (1000, [46, 140, 234, 328, 422, 516, 610, 704, 798, 892], 0),  # bins of 93.9 over [0, 939]
    ],
)
def test_video_clip_indices_hand_computed(num_frames, starts, padded):
    idx = video_clip_indices(num_frames)
    assert idx.shape == (10, 16)
    expected = np.asarray(starts)[:, None] + STRIDE_4[None, :]
    expected[expected >= num_frames] = 0
    np.testing.assert_array_equal(idx, expected)
    assert ((idx[:, 1:] == 0).sum(axis=1) == padded).all()
    if num_frames == 30:
        assert idx[9].tolist() == [0, 4, 8, 12, 16, 20, 24, 28] + [0] * 8


def test_video_clip_indices_equal_the_reference_code_for_every_length():
    for n in range(1, 3001):
        np.testing.assert_array_equal(video_clip_indices(n).reshape(-1), reference_indices(n), err_msg=str(n))
    np.testing.assert_array_equal(video_clip_indices(86_400 * 30).reshape(-1), reference_indices(86_400 * 30))
    with pytest.raises(ValueError):
        video_clip_indices(0)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (7, 7, [7] * 16),  # 1 frame: a still clip
        (10, 14, [10, 10, 10, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14]),  # 5 frames, held
        (0, 15, list(range(16))),  # 16 frames: stride 1
        (100, 129, list(range(107, 123))),  # 30 frames: stride 29 // 15 = 1, span 16, centred
        (20, 79, list(range(27, 73, 3))),  # 60 frames: stride 3, span 46, centred
        (20, 80, list(range(20, 81, 4))),  # 61 frames: one reference clip
        (20, 81, list(range(20, 81, 4))),  # 62: still one, (62 - 61) // 2 = 0 frames in
        (20, 82, list(range(21, 82, 4))),  # 63: one frame in
    ],
)
def test_shot_clip_indices_short_shots(start, end, expected):
    np.testing.assert_array_equal(shot_clip_indices(start, end), np.asarray([expected]))


def test_shot_clip_indices_long_shots():
    # 122 frames = 2 spans: 2 clips tiling the shot exactly.
    np.testing.assert_array_equal(shot_clip_indices(0, 121)[:, 0], [0, 61])
    np.testing.assert_array_equal(shot_clip_indices(1000, 1121)[:, 0], [1000, 1061])
    # 300 frames: 300 // 61 = 4 clips, one centred in each 75-frame bin: 50 + (75j + 37.5 - 30.5).
    np.testing.assert_array_equal(shot_clip_indices(50, 349)[:, 0], [57, 132, 207, 282])
    # Long shots get max_clips, one per bin of L / 10 frames.
    idx = shot_clip_indices(0, 999)
    np.testing.assert_array_equal(idx[:, 0], [19 + 100 * j for j in range(10)])
    assert shot_clip_indices(0, 99_999, max_clips=3).shape == (3, 16)
    for start, end in [
        (0, 0),
        (3, 9),
        (5, 20),
        (0, 60),
        (0, 61),
        (0, 121),
        (40, 400),
        (0, 609),
        (0, 610),
        (7, 5000),
    ]:
        idx = shot_clip_indices(start, end)
        assert idx.min() >= start and idx.max() <= end
        assert (np.diff(idx, axis=1) >= 0).all()
        steps = np.diff(idx, axis=1)
        if end - start + 1 >= 16:
            assert (steps == steps[:, :1]).all() and 1 <= steps[0, 0] <= 4  # steady stride
        assert (idx[1:, 0] > idx[:-1, -1]).all()  # clips do not overlap
    with pytest.raises(ValueError):
        shot_clip_indices(5, 4)


# --- preprocessing and the forward against the reference -----------------------------------------


@pytest.mark.parametrize("size", [(250, 141), (141, 250), (64, 48), (320, 180), (128, 200)])
def test_preprocessing_is_the_reference_bit_for_bit(size):
    w, h = size
    frames = list(synthetic.shot_frames([4], w, h, seed=5))
    resized = np.stack([resize_clip_frame(f) for f in frames])
    assert min(resized.shape[1:3]) == 128
    ours = clip_tensor(resized)
    assert ours.dtype == np.float32 and ours.shape == (3, 4, 112, 112)
    np.testing.assert_array_equal(ours, reference_clip(frames).numpy())


def test_embedding_equals_the_reference(model, checkpoint, video_frames):
    """Same weights, same video: the pipeline's literal path vs ours (frames resized as decoded,
    BatchNorm folded, channels-last, batched by the handler). 2 clips to keep the test short."""
    reference = RefResNet2p1d(RefBottleneck, [2, 2, 2, 2])
    reference.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
    ref_embedding, ref_clip_feats = reference_embedding(reference.eval(), video_frames, multi_crop=2)

    handler = CMDEmbeddingHandler(checkpoint, device="cpu", max_batch_size=2)
    loaded = handler.load_model()
    clips = video_clip_indices(len(video_frames), clips=2)
    tensors = [clip_tensor(np.stack([resize_clip_frame(video_frames[i]) for i in row])) for row in clips]
    results = list(handler.run_inference(tensors, loaded))
    feats = np.stack([r.inference for r in results])
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    embedding = video_embedding(feats)
    np.testing.assert_allclose(feats, ref_clip_feats, rtol=0, atol=1e-5)
    np.testing.assert_allclose(embedding, ref_embedding, rtol=0, atol=1e-5)
    # The check can fail: the two clips (different shots) differ by far more than the tolerance.
    assert np.abs(feats[0] - feats[1]).max() > 1e-2 and (embedding >= 0).all()


@pytest.mark.native_bf16
def test_bf16_is_close_to_fp32(checkpoint, video_frames):
    clip = clip_tensor(np.stack([resize_clip_frame(f) for f in video_frames[:61:4]]))
    fp32 = CMDEmbeddingHandler(checkpoint, device="cpu")
    bf16 = CMDEmbeddingHandler(checkpoint, device="cpu", precision="bf16")
    a = next(iter(fp32.run_inference([clip], fp32.load_model()))).inference
    b = next(iter(bf16.run_inference([clip], bf16.load_model()))).inference
    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cos > 0.999, cos


class PicklingProxy:
    """Stands in for Beam's cross-process model proxy (model_copies / large_model): only method
    calls with picklable arguments and results get through."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        method = getattr(self._model, name)

        def call(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            return pickle.loads(pickle.dumps(method(*args, **kwargs)))

        return call


def test_handler_works_through_a_model_proxy(checkpoint):
    handler = CMDEmbeddingHandler(checkpoint, device="cpu", model_copies=1)
    model = handler.load_model()
    clip = np.random.default_rng(1).standard_normal((3, 16, 112, 112)).astype(np.float32)
    a = next(iter(handler.run_inference([clip], PicklingProxy(model)))).inference
    b = next(iter(handler.run_inference([clip], model))).inference
    np.testing.assert_array_equal(a, b)


def test_handler_configuration():
    handler = CMDEmbeddingHandler("x.pt", device="cpu", max_batch_size=4, model_copies=2)
    assert handler.get_metrics_namespace() == "reelbeam.cmd"
    assert handler.batch_elements_kwargs()["max_batch_size"] == 4 and handler.model_copies() == 2
    assert handler.get_num_bytes([np.zeros((3, 16, 112, 112), np.float32)]) == 3 * 16 * 112 * 112 * 4
    with pytest.raises(ValueError, match="precision"):
        CMDEmbeddingHandler("x.pt", precision="fp16")
    with pytest.raises(ValueError, match="device"):
        CMDEmbeddingHandler("x.pt", device="tpu")


def test_video_embedding_is_the_plain_mean():
    feats = np.asarray([[1.0, 2.0], [3.0, 6.0]], np.float32)
    np.testing.assert_array_equal(video_embedding(feats), [2.0, 4.0])
    with pytest.raises(ValueError):
        video_embedding(np.zeros((0, 2048), np.float32))
