"""`recognise`: each published layout is named with the flag that takes it, through the same checks
the flags run; a file of no known model, a damaged model file and missing sources are one line each,
and a broken file of a known model gets that model's error."""

import hashlib
import os

import fsspec
import layouts
import pytest
import torch
from tiny_clip import save_tiny_clip

from reelbeam.models.checkpoints import CheckpointError
from reelbeam.models.recognition import recognise


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    made = {
        "bassl": layouts.save_bassl_modelscope(str(root / "bassl.pt")),
        "bassl_lightning": layouts.save_bassl_lightning(str(root / "model-v1.ckpt")),
        "scrl": layouts.save_scrl_moco(str(root / "scrl.pth.tar")),
        "cmd": layouts.save_cmd(str(root / "cmd.pt")),
        "clipit": layouts.save_clipit(str(root / "clipit.pt")),
    }
    return made


@pytest.mark.parametrize("name, architecture, flag", [
    ("bassl", "BaSSL scene model (ResNet-50 shot encoder + CRN + boundary head)", "--scene-checkpoint"),
    ("bassl_lightning", "BaSSL without the boundary head", "--scene-checkpoint"),
    ("scrl", "SCRL shot encoder (ResNet-50, 9-channel conv1)", "--scrl-checkpoint"),
    ("cmd", "CMD R(2+1)D-26 video embedding", "--cmd-checkpoint"),
    ("clipit", "CLIP-It scoring transformer", "--clipit-checkpoint"),
])
def test_each_published_layout_is_named_with_its_flag(files, name, architecture, flag):
    found = recognise(files[name])
    assert found.architecture.startswith(architecture) and found.flag == flag
    saved = torch.load(files[name], weights_only=True)
    assert found.tensors == len(saved.get("state_dict", saved))
    assert found.sha256 == digest(files[name]) and found.weights == files[name]


def test_the_bundled_weights_are_recognised_with_their_published_digest():
    from reelbeam.models import efficientnet_lite, transnetv2

    found = recognise(transnetv2.default_weights_path())
    assert found.architecture.startswith("TransNetV2") and found.flag == "--transnetv2-weights"
    lite = recognise(efficientnet_lite.default_weights_path())
    assert lite.architecture.startswith("EfficientNet-Lite0") and lite.flag == ""
    assert lite.sha256 == efficientnet_lite.WEIGHTS_SHA256


def test_a_modelscope_folder_is_its_pytorch_model_pt(files, tmp_path):
    folder = tmp_path / "damo" / "cv_r2p1d_video_embedding"
    folder.mkdir(parents=True)
    (folder / "configuration.json").write_text("{}")
    os.link(files["cmd"], folder / "pytorch_model.pt")
    found = recognise(str(folder))
    assert found.source == str(folder) and found.weights.endswith("pytorch_model.pt")
    assert found.architecture.startswith("CMD") and found.sha256 == digest(files["cmd"])


def test_fsspec_urls_are_read_like_local_files(files):
    fsspec.filesystem("memory").put_file(files["clipit"], "/recognise/clipit.pt")
    found = recognise("memory://recognise/clipit.pt")
    assert found.flag == "--clipit-checkpoint" and found.sha256 == digest(files["clipit"])


def test_a_broken_file_of_a_known_model_gets_that_models_error(tmp_path):
    from reelbeam.models.bassl import BaSSL

    state = layouts.Hollow(BaSSL).state_dict()
    del state["crn.encoder.layer.1.output.dense.weight"]
    torch.save(state, tmp_path / "bassl.pt")
    with pytest.raises(CheckpointError, match="not a BaSSL .* checkpoint: keys 1 missing"):
        recognise(str(tmp_path / "bassl.pt"))


@pytest.mark.parametrize("make, message", [
    (lambda p: torch.save({"layer.weight": torch.zeros(4, 4)}, p), r"1 tensors \(layer.weight, ...\) named as in no model"),
    (lambda p: open(p, "w").write("not weights\n" * 20), "not a PyTorch checkpoint"),
    (lambda p: open(p, "wb").write(os.urandom(4096)), "not a PyTorch checkpoint"),
])
def test_a_file_of_no_known_model_is_one_line(tmp_path, make, message):
    path = str(tmp_path / "weights.pt")
    make(path)
    with pytest.raises(CheckpointError, match=message) as err:
        recognise(path)
    assert "\n" not in str(err.value) and path in str(err.value)


@pytest.mark.parametrize("source, message", [
    ("/no/such/bassl.pt", "/no/such/bassl.pt: no such file or folder"),
    ("missing.pt", "missing.pt: no such file or folder"),
    ("memory://no/such.pt", "memory://no/such.pt: no such file or folder"),
    ("no-such-org/no-such-model", "'no-such-org/no-such-model' is not in the local Hugging Face cache"),
])
def test_a_missing_source_is_one_line(source, message):
    with pytest.raises(CheckpointError, match=message):
        recognise(source)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny-clip"))


def test_a_clip_folder_is_compared_with_clipmodel(clip_dir):
    found = recognise(clip_dir)
    assert found.architecture == "CLIP (ViT 2x32, 32-px patches, 512-d features)" and found.flag == "--clip-model"
    weights = os.path.join(clip_dir, "model.safetensors")
    assert found.weights == weights and found.sha256 == digest(weights) and found.tensors > 0


def test_a_clip_folder_with_pytorch_model_bin(clip_dir, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    folder.mkdir()
    for name in os.listdir(clip_dir):
        if name != "model.safetensors":
            os.link(os.path.join(clip_dir, name), folder / name)
    state = load_file(os.path.join(clip_dir, "model.safetensors"))
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]  # as older transformers wrote
    torch.save(state, folder / "pytorch_model.bin")
    found = recognise(str(folder))
    assert found.weights.endswith("pytorch_model.bin") and found.tensors == len(state)


def test_a_clip_folder_of_another_width_or_model_is_refused(clip_dir, tmp_path):
    wide = save_tiny_clip(str(tmp_path / "wide"), projection_dim=256)
    with pytest.raises(CheckpointError, match="256-d features; frame_embeddings and CLIP-It take the 512-d"):
        recognise(wide)
    other = tmp_path / "other"
    other.mkdir()
    for name in os.listdir(clip_dir):
        os.link(os.path.join(clip_dir, name), other / name)
    os.remove(other / "config.json")
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="a bert model's config.json, not CLIP's"):
        recognise(str(other))
    with pytest.raises(CheckpointError, match="a Hugging Face weights file; give the folder"):
        recognise(os.path.join(clip_dir, "model.safetensors"))
