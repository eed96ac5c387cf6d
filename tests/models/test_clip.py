"""CLIP: preprocessing against the reference's torchvision transform, loading a tiny CLIPModel
through every kind of source, image and text features, the RunInference handler."""

import os

import apache_beam as beam
import fsspec
import numpy as np
import pytest
import reference_openai_clip as openai_clip
import torch
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from PIL import Image
from tiny_clip import save_tiny_clip
from torchvision import transforms as T

from reelbeam.models.checkpoints import CheckpointError
from reelbeam.models.clip import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImageHandler,
    clip_available,
    clip_pixels,
    clip_resize_size,
    cosine_scores,
    encode_texts,
    image_features,
    load_clip,
    preprocess,
    resize_for_clip,
)


def reference_transform():
    """OpenAI CLIP's `_transform(224)` (clip/clip.py), the CLIP-It pipeline's preprocessing."""
    return T.Compose(
        [
            T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            lambda im: im.convert("RGB"),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def frame(h, w, seed=0):
    """A smooth gradient with texture and noise: bicubic overshoot and crop offsets both show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1), (x + y) % 64 * 4.0], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny-clip"))


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_clip(clip_dir, local_files_only=True)


# Landscape, portrait, square, odd offsets (round(0.5) = 0, round(1.5) = 2 in Python), already
# 224 on the short side, smaller than 224 (upscaled), and a 1080p frame.
SIZES = [
    (90, 160),
    (160, 90),
    (300, 300),
    (225, 301),
    (227, 400),
    (224, 398),
    (224, 224),
    (100, 133),
    (1080, 1920),
]


@pytest.mark.parametrize("h,w", SIZES)
def test_pixels_equal_the_reference_preprocessing(h, w):
    img = frame(h, w, seed=h * w)
    ours = clip_pixels(resize_for_clip(img))
    ref = reference_transform()(Image.fromarray(img)).numpy()
    assert ours.dtype == np.float32 and ours.shape == (3, 224, 224)
    np.testing.assert_array_equal(ours, ref)  # bit for bit
    assert np.array_equal(preprocess(img), ours)


@pytest.mark.parametrize("h,w", SIZES)
def test_resize_keeps_the_aspect_ratio_as_torchvision(h, w):
    out = resize_for_clip(frame(h, w))
    assert out.dtype == np.uint8 and min(out.shape[:2]) == 224
    ref = T.Resize(224, interpolation=T.InterpolationMode.BICUBIC)(Image.fromarray(frame(h, w)))
    assert out.shape[:2] == (ref.height, ref.width) == clip_resize_size(h, w)
    assert np.array_equal(out, np.asarray(ref))


def test_resize_accepts_pil_images():
    img = frame(120, 200)
    assert np.array_equal(resize_for_clip(Image.fromarray(img)), resize_for_clip(img))


def test_clip_pixels_refuses_a_frame_that_was_not_resized():
    with pytest.raises(ValueError, match="resize_for_clip"):
        clip_pixels(frame(100, 300))


def test_loads_from_a_folder_and_fsspec_urls(clip_dir, clip, tmp_path):
    fs = fsspec.filesystem("memory")
    for name in os.listdir(clip_dir):
        fs.put_file(os.path.join(clip_dir, name), f"/models/tiny-clip/{name}")
    pixels = torch.from_numpy(np.stack([preprocess(frame(90, 160, s)) for s in range(3)]))
    want = image_features(clip.model, pixels)
    for source in (f"file://{clip_dir}", "memory://models/tiny-clip"):
        loaded = load_clip(source, cache_dir=str(tmp_path / "cache"), local_files_only=True)
        assert loaded.embed_dim == 512
        torch.testing.assert_close(image_features(loaded.model, pixels), want, rtol=0, atol=0)
    # the remote folder was copied once; a second load reuses the copy
    assert len(os.listdir(tmp_path / "cache")) == 1
    again = load_clip("memory://models/tiny-clip", cache_dir=str(tmp_path / "cache"), local_files_only=True)
    assert again.local == loaded.local and len(os.listdir(tmp_path / "cache")) == 1


@pytest.mark.parametrize("source", ["no-such-org/no-such-clip", "/no/such/folder", "memory://no/such/clip"])
def test_a_missing_model_is_one_clear_line(source, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        load_clip(source, cache_dir=str(tmp_path), local_files_only=True)
    msg = str(err.value)
    assert "\n" not in msg and source in msg


def test_clip_available_says_where_a_model_is_without_network(clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert clip_available(clip_dir) and clip_available(f"file://{clip_dir}")
    fs = fsspec.filesystem("memory")
    for name in ("config.json", "model.safetensors"):
        fs.put_file(os.path.join(clip_dir, name), f"/avail/clip/{name}")
    fs.put_file(os.path.join(clip_dir, "config.json"), "/avail/config-only/config.json")
    assert clip_available("memory://avail/clip")
    assert not clip_available("memory://avail/config-only")  # config.json without weights
    assert not clip_available("memory://avail/none")
    assert not clip_available(str(tmp_path))  # a folder without config.json
    assert not clip_available("no-such-org/no-such-clip") and not clip_available("/no/such/folder")


NO_WEIGHTS = "has no CLIP weights (expected config.json + model.safetensors/pytorch_model.bin)"


@pytest.mark.parametrize("source, message", [
    ("/no/such/folder", "'/no/such/folder' does not exist"),
    ("./no-such-folder", "'./no-such-folder' does not exist"),
    ("models/clip/v1", "'models/clip/v1' does not exist"),
    ("memory://no/such/clip", "'memory://no/such/clip' does not exist"),
    ("{tmp}/config-only", "'{tmp}/config-only' " + NO_WEIGHTS),
    ("{tmp}/weights-only", "'{tmp}/weights-only' " + NO_WEIGHTS),
    ("memory://locate/config-only", "'memory://locate/config-only' " + NO_WEIGHTS),
    ("{tmp}/config-only/config.json", "'{tmp}/config-only/config.json' is a file; give the folder that holds it"),
    ("no-such-org/no-such-clip", "'no-such-org/no-such-clip' is not in the local Hugging Face cache"),
    ("tiny-org/config-only", "'tiny-org/config-only' has no CLIP weights in the local Hugging Face cache"),
])
def test_locate_clip_says_which_of_path_folder_and_id_is_wrong(clip_dir, tmp_path, monkeypatch, source, message):
    """A path that does not exist, a folder without weights and an id that is not cached are three
    different lines (it used to say "not in the local Hugging Face cache" for a missing path and
    "not found" for a folder without weights)."""
    import huggingface_hub.constants

    from reelbeam.models.clip import clip_problem, locate_clip

    (tmp_path / "config-only").mkdir()
    os.link(os.path.join(clip_dir, "config.json"), tmp_path / "config-only" / "config.json")
    (tmp_path / "weights-only").mkdir()
    os.link(os.path.join(clip_dir, "model.safetensors"), tmp_path / "weights-only" / "model.safetensors")
    fsspec.filesystem("memory").put_file(os.path.join(clip_dir, "config.json"), "/locate/config-only/config.json")
    repo = tmp_path / "hub" / "models--tiny-org--config-only"
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    os.link(os.path.join(clip_dir, "config.json"), repo / "snapshots" / "abc" / "config.json")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    source, message = source.format(tmp=tmp_path), message.format(tmp=tmp_path)
    with pytest.raises(CheckpointError) as err:
        locate_clip(source)
    assert str(err.value).startswith(message), str(err.value)
    assert clip_problem(source) == str(err.value)


def test_locate_clip_finds_each_kind_of_source(clip_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from reelbeam.models.clip import locate_clip

    found = locate_clip(clip_dir)
    assert found.config == os.path.join(clip_dir, "config.json") and found.weights.endswith("model.safetensors")
    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-clip" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--tiny-org--tiny-clip" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny-org--tiny-clip" / "refs" / "main").write_text("abc")
    for name in os.listdir(clip_dir):
        os.link(os.path.join(clip_dir, name), snapshot / name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cached = locate_clip("tiny-org/tiny-clip")
    assert cached.cached and cached.weights == str(snapshot / "model.safetensors")


def test_a_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(CheckpointError, match="cannot load CLIP model"):
        load_clip(str(tmp_path), local_files_only=True)


def test_image_features_are_clipmodels(clip):
    pixels = torch.from_numpy(np.stack([preprocess(frame(200, 300, s)) for s in range(4)]))
    with torch.no_grad():
        out = clip.model.get_image_features(pixel_values=pixels)
    want = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4.x / 5.x
    got = image_features(clip.model, pixels)
    assert got.shape == (4, 512)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not torch.allclose(got[0], got[1], atol=1e-4)


def test_text_features_do_not_depend_on_batch_padding(clip):
    texts = ["a person running", "run", "a much longer sentence about a person who is running far"]
    together = encode_texts(clip.model, clip.tokenizer, texts)
    assert together.shape == (3, 512) and together.dtype == np.float32
    for i, t in enumerate(texts):
        np.testing.assert_allclose(
            encode_texts(clip.model, clip.tokenizer, [t])[0], together[i], rtol=0, atol=1e-5
        )
    with torch.no_grad():
        batch = clip.tokenizer(texts[:1], return_tensors="pt")
        out = clip.model.get_text_features(**batch)
    want = out if isinstance(out, torch.Tensor) else out.pooler_output
    np.testing.assert_allclose(together[0], want[0].numpy(), rtol=0, atol=1e-5)


def test_clipmodel_equals_openai_clip_with_the_same_weights():
    """transformers' CLIPModel (what reelbeam runs) against a literal copy of OpenAI's CLIP model
    code (what the reference runs), the same random weights in both (fan-in scaled, so the output
    depends on the input): image and text features to 1e-5."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    ref = openai_clip.CLIP(64, 224, 2, 64, 32, 2, 77, 100, 64, 2, 2).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif ".ln_" in name or name.startswith(("ln_", "visual.ln_")):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif (
                name.endswith(("proj", "text_projection"))
                and p.ndim == 2
                and "attn" not in name
                and "mlp" not in name
            ):
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[0] ** 0.5)  # used as x @ proj
            elif p.ndim >= 2 and "embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / np.prod(p.shape[1:]) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g))
    common = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2}
    cfg = CLIPConfig(
        text_config={**common, "vocab_size": 100, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                     "bos_token_id": 98, "eos_token_id": 99, "pad_token_id": 0},
        vision_config={**common, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"},
        projection_dim=64,
    )  # fmt: skip
    model = CLIPModel(cfg).eval()
    missing, unexpected = model.load_state_dict(
        openai_clip.to_transformers(ref.state_dict(), 2, 2), strict=False
    )
    assert not unexpected and all("position_ids" in k for k in missing)

    pixels = torch.from_numpy(np.stack([preprocess(frame(200 + 30 * s, 300, s)) for s in range(4)]))
    with torch.no_grad():
        want = ref.encode_image(pixels)
    got = image_features(model, pixels)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (got[0] - got[1]).abs().max() > 1e-2

    ids = torch.zeros(3, 77, dtype=torch.long)  # clip.tokenize's layout: SOT, tokens, EOT, zeros
    for i, n in enumerate((1, 5, 20)):
        ids[i, : n + 2] = torch.tensor([98, *torch.randint(1, 97, (n,), generator=g).tolist(), 99])
    with torch.no_grad():
        want = ref.encode_text(ids)
        got = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_a_sentence_over_77_tokens_is_refused_unless_truncated(clip):
    long = " ".join(["person"] * 80)
    with pytest.raises(ValueError, match="too long"):
        encode_texts(clip.model, clip.tokenizer, [long])
    assert encode_texts(clip.model, clip.tokenizer, [long], truncate=True).shape == (1, 512)


def test_cosine_scores():
    f = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    np.testing.assert_allclose(cosine_scores(f, np.array([3.0, 0.0])), [1.0, 0.0, np.sqrt(0.5)], atol=1e-6)
    assert cosine_scores(f, np.ones((4, 2))).shape == (4, 3)


def test_handler_encodes_frames_of_any_size(clip_dir, clip):
    handler = CLIPImageHandler(clip_dir, device="cpu", max_batch_size=4)
    assert handler.get_metrics_namespace() == "reelbeam.clip_image" and handler.normalised is False
    assert (handler.device, handler.precision) == ("cpu", "fp32")
    assert handler.batch_elements_kwargs()["max_batch_size"] == 4
    model = handler.load_model()
    frames = [resize_for_clip(frame(90, 160, 1)), resize_for_clip(frame(300, 200, 2)), frame(50, 70, 3)]
    results = handler.run_inference(frames, model)
    want = image_features(clip.model, torch.from_numpy(np.stack([preprocess(f) for f in frames]))).numpy()
    for r, w in zip(results, want):
        assert r.inference.dtype == np.float32 and r.inference.shape == (512,)
        np.testing.assert_allclose(r.inference, w, rtol=0, atol=1e-5)
    assert handler.get_num_bytes(frames) == sum(f.nbytes for f in frames)


@pytest.mark.native_bf16
def test_handler_bf16_is_close_to_fp32(clip_dir):
    frames = [resize_for_clip(frame(90, 160, s)) for s in range(3)]
    fp32 = CLIPImageHandler(clip_dir, device="cpu")
    bf16 = CLIPImageHandler(clip_dir, device="cpu", precision="bf16")
    a = np.stack([r.inference for r in fp32.run_inference(frames, fp32.load_model())])
    b = np.stack([r.inference for r in bf16.run_inference(frames, bf16.load_model())])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


def test_handler_refuses_an_unknown_precision(clip_dir):
    with pytest.raises(ValueError, match="precision"):
        CLIPImageHandler(clip_dir, precision="int4")


def test_run_inference_keyed_by_frame(clip_dir):
    frames = [((f"v{i % 2}", i), resize_for_clip(frame(90, 160, i))) for i in range(5)]
    handler = KeyedModelHandler(CLIPImageHandler(clip_dir, device="cpu", max_batch_size=2))

    def check(rows):
        assert sorted(k for k, _ in rows) == sorted(k for k, _ in frames)
        assert all(r.inference.shape == (512,) for _, r in rows)

    with TestPipeline() as p:
        out = p | beam.Create(frames) | RunInference(handler)
        assert_that(out, check)


@pytest.mark.gpu
def test_handler_on_cuda_runs_bf16_close_to_cpu_fp32(clip_dir):
    frames = [resize_for_clip(frame(90, 160, s)) for s in range(6)]
    cpu = CLIPImageHandler(clip_dir, device="cpu")
    gpu = CLIPImageHandler(clip_dir, device="cuda")
    assert (gpu.device, gpu.precision) == ("cuda", "bf16")
    a = np.stack([r.inference for r in cpu.run_inference(frames, cpu.load_model())])
    b = np.stack([r.inference for r in gpu.run_inference(frames, gpu.load_model())])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
