"""BaSSL: loading the published layouts, and outputs against a literal reimplementation of the
reference path (each window re-encodes its 17 shots; CLS from the raw features; token 9)."""

import math

import numpy as np
import pytest
import torch
import torchvision
from model_init import randomised
from PIL import Image

from reelbeam.models.bassl import (
    BaSSL,
    CheckpointError,
    load_bassl,
    preprocess_transform,
    save_modelscope_layout,
    window_indices,
)
from reelbeam.models.checkpoints import load_state_dict


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomised(BaSSL())


@pytest.fixture(scope="module")
def modelscope_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "pytorch_model.pt"
    save_modelscope_layout(model, str(path))
    return str(path)


def test_window_indices_clip_at_the_edges():
    w = window_indices(3)
    assert w.shape == (3, 17)
    assert w[0].tolist() == [0] * 9 + [1, 2] + [2] * 6
    assert w[2, 8] == 2 and w[1, 8] == 1


def test_modelscope_layout_loads_with_its_buffers(model, modelscope_file):
    keys = load_state_dict(modelscope_file)
    assert "crn.attention_mask" in keys and "crn.shot_embedding.pos_ids" in keys
    assert "shot_encoder.layer4.2.bn3.running_var" in keys and "head_sbd.weight" in keys
    loaded = load_bassl(modelscope_file)
    assert loaded.has_head and loaded.source_format == "modelscope"
    x = torch.randn(2, 17, 2048)
    torch.testing.assert_close(loaded.model.score_windows(x), model.score_windows(x), rtol=0, atol=1e-6)


def test_lightning_pretraining_checkpoint_loads_without_head(model, tmp_path):
    state = {f"shot_encoder.{k}": v for k, v in model.shot_encoder.state_dict().items()}
    state.update({f"crn.{k}": v for k, v in model.crn.state_dict().items()})
    state["loss.head_nce.model.0.weight"] = torch.zeros(2048, 2048)
    state["loss.head_pp.weight"] = torch.zeros(2, 768)
    path = tmp_path / "model-v1.ckpt"
    torch.save({"epoch": 9, "global_step": 100, "pytorch-lightning_version": "1.3.8", "state_dict": state}, path)
    loaded = load_bassl(str(path))
    assert loaded.source_format == "lightning" and not loaded.has_head
    img = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(loaded.model.shot_encoder(img), model.shot_encoder(img), rtol=0, atol=1e-5)


def test_wrong_checkpoint_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save({f"shot_encoder.{k}": v for k, v in torchvision.models.resnet18().state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_bassl(str(path))
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="shot_encoder"):
        load_bassl(str(path))


def test_shot_encoder_equals_torchvision_resnet50(model, modelscope_file):
    tv = torchvision.models.resnet50()
    state = {k[len("shot_encoder."):]: v for k, v in load_state_dict(modelscope_file).items() if k.startswith("shot_encoder.")}
    missing, unexpected = tv.load_state_dict(state, strict=False)
    assert missing == ["fc.weight", "fc.bias"] and not unexpected
    tv.fc = torch.nn.Identity()
    tv.eval()
    x = torch.randn(3, 3, 224, 224)
    a, b = load_bassl(modelscope_file).model.shot_encoder(x), tv(x)
    assert (a - b).abs().max() <= 1e-4
    # Not washed out: different images give clearly different features.
    assert (a[0] - a[1]).abs().max() > 1e-2


def reference_path(model: BaSSL, shot_images: list[list[Image.Image]]) -> np.ndarray:
    """The reference, literally: per shot i, build the window of 17 shots, re-encode every shot of
    it (3 keyframes each, mean), CLS = mean, Linear + positions + LayerNorm, BertEncoder, token 9,
    head, softmax[:, 1]."""
    from transformers.models.bert.modeling_bert import BertEncoder

    from reelbeam.models.bassl import bert_config

    tf = preprocess_transform()
    enc = torchvision.models.resnet50()
    enc.fc = torch.nn.Identity()
    enc.load_state_dict(model.shot_encoder.state_dict())
    bert = BertEncoder(bert_config())
    bert.load_state_dict(model.crn.encoder.state_dict())
    emb = model.crn.shot_embedding
    enc.eval(), bert.eval()
    n = len(shot_images)
    out = []
    with torch.no_grad():
        for i in range(n):
            idx = [min(max(i + d, 0), n - 1) for d in range(-8, 9)]
            x = torch.stack([torch.stack([tf(im) for im in shot_images[j]]) for j in idx])  # [17, 3, 3, 224, 224]
            feats = torch.stack([enc(x[:, k]) for k in range(3)]).mean(0)  # [17, 2048]
            tokens = torch.cat([feats.mean(0, keepdim=True), feats])[None]
            h = emb.LayerNorm(emb.shot_embedding(tokens) + emb.position_embedding(torch.arange(18))[None])
            h = bert(h).last_hidden_state[:, 9]
            out.append(torch.softmax(model.head_sbd(h), -1)[0, 1].item())
    return np.array(out)


def test_pipeline_path_equals_the_reference_path(model, modelscope_file):
    rng = np.random.default_rng(3)
    shots = [[Image.fromarray(rng.integers(0, 256, (90 + 10 * s, 160, 3), dtype=np.uint8)) for _ in range(3)] for s in range(2)]
    expected = reference_path(model, shots)
    loaded = load_bassl(modelscope_file).model
    tf = preprocess_transform()
    keyframes = torch.stack([torch.stack([tf(im) for im in shot]) for shot in shots])
    features = loaded.encode_shots(keyframes)  # each shot once
    got = loaded.boundary_probabilities(features).numpy()
    assert np.abs(got - expected).max() <= 1e-4
    assert not math.isclose(expected[0], expected[1], abs_tol=1e-4), "the two shots should differ"
