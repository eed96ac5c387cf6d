"""`reelbeam train summaries`: frame_embeddings committed through the store, a TVSum-style h5 and a
CSV, a small CLIP-It (the published width, fewer layers) trained 2 epochs; the checkpoint loads
through `--clipit-checkpoint`'s loader; determinism, resume, queries, and the mismatch error."""

import json

import numpy as np
import pytest
import torch
from outputs import write_table

from reelbeam.models.clipit import ClipIt, ClipItConfig, load_clipit, score_frames, text_block
from reelbeam.pipelines.cli import main
from reelbeam.train.summaries import (
    Annotation,
    SummaryTrainConfig,
    read_annotations,
    targets_at,
    train_summaries,
)

h5py = pytest.importorskip("h5py")

SMALL = ClipItConfig(d_inner=64, n_layers=1, n_head=2, d_k=16, d_v=16, txt_heads=2, n_position=64)
VIDEOS = ("video_1", "video_2", "video_3", "video_4")
N_FRAMES, STEP = 300, 15


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out") / "tables")
    rng = np.random.default_rng(0)
    videos, rows = [], []
    for v, name in enumerate(VIDEOS):
        vid = f"{v:016x}"
        videos.append({"video_id": vid, "uri": f"/data/{name}.mp4", "status": "ok", "frame_count": N_FRAMES})
        for f in range(0, N_FRAMES, STEP):
            rows.append({"video_id": vid, "frame_idx": f, "pts_time": f / 30, "model": "tiny-clip",
                         "embedding": rng.standard_normal(512).astype(np.float32).tolist(), "normalised": False})
    write_table(out, "videos", videos)
    write_table(out, "frame_embeddings", rows)
    return out


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ann") / "tvsum.h5")
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        for name in VIDEOS:
            g = f.create_group(name)
            picks = np.arange(0, N_FRAMES, STEP)
            g["picks"] = picks
            g["gtscore"] = rng.random(len(picks)).astype(np.float32)
            g["n_frames"] = N_FRAMES
            g["change_points"] = np.array([(s, s + 29) for s in range(0, N_FRAMES, 30)])
            g["user_summary"] = (rng.random((3, N_FRAMES)) < 0.15).astype(np.float32)
            g["features_clip_txt"] = rng.standard_normal((7, 512)).astype(np.float32)
    return path


def _cfg(output, annotations, out, **kw):
    return SummaryTrainConfig(**{"outputs": (output,), "annotations": annotations, "out": str(out), "epochs": 2, "seed": 5,
                                 "val_fraction": 0.25, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, output, annotations):
    out = tmp_path_factory.mktemp("trained")
    return out, train_summaries(_cfg(output, annotations, out), progress=False, config=SMALL)


def test_checkpoint_loads_as_clipit_checkpoint(trained):
    out, _ = trained
    path = str(out / "pytorch_model.pt")
    saved = torch.load(path, weights_only=True)
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in ClipIt(SMALL).state_dict().items()}
    model = load_clipit(path, config=SMALL)  # strict, as --clipit-checkpoint loads it
    x = np.random.default_rng(2).standard_normal((20, 512)).astype(np.float32)
    s = score_frames(model, x, text_block(np.ones((1, 512), np.float32)))
    assert s.shape == (20,) and np.all((s > 0) & (s < 1))
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    assert all(e["val"]["fscore"] is not None and np.isfinite(e["val"]["mse"]) for e in m["epochs"])
    assert m["best"]["fscore"] == max(e["val"]["fscore"] for e in m["epochs"])
    assert m["settings"]["loss"].startswith("MSE") and m["settings"]["lr"] == 5e-5
    train, val = m["split"]["train"], m["split"]["val"]
    assert sorted(train + val) == sorted(VIDEOS) and len(val) == 1


def test_same_seed_same_model_and_resume(tmp_path, trained, output, annotations):
    out, first = trained

    class Stop(Exception):
        pass

    def stop(epoch):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train_summaries(_cfg(output, annotations, tmp_path), progress=False, on_epoch=stop, config=SMALL)
    import dataclasses

    result = train_summaries(dataclasses.replace(_cfg(output, annotations, tmp_path), resume=True), progress=False, config=SMALL)
    assert [e["train_loss"] for e in result["epochs"]] == [e["train_loss"] for e in first["epochs"]]
    a = torch.load(str(tmp_path / "pytorch_model.pt"), weights_only=True)
    b = torch.load(str(out / "pytorch_model.pt"), weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_csv_annotations_and_targets(tmp_path):
    path = tmp_path / "importance.csv"
    path.write_text("video,frame,score\nv,30,4\nv,0,1\nv,15,2\n")
    ann = read_annotations(str(path))["v"]
    assert ann.picks.tolist() == [0, 15, 30]
    np.testing.assert_allclose(ann.gtscore, [0, 1 / 3, 1])  # min-max scaled: outside [0, 1]
    a = Annotation(picks=np.array([0, 10, 20]), gtscore=np.array([0.1, 0.5, 0.9], np.float32))
    np.testing.assert_allclose(targets_at(a, np.array([0, 5, 10, 19, 25])), [0.1, 0.1, 0.5, 0.5, 0.9])


def test_annotation_beyond_the_frames_is_one_line(tmp_path, output, capsys):
    path = str(tmp_path / "short.h5")
    with h5py.File(path, "w") as f:
        for name in VIDEOS:
            g = f.create_group(name)
            g["gtscore"] = np.zeros(5, np.float32)
            g["picks"] = np.arange(5) * 15
            g["n_frames"] = 100
    rc = main(["train", "summaries", "--from", output, "--annotations", path, "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "it has 100 frames, the frame_embeddings reach frame 285" in err


def test_query_needs_the_clip_model(tmp_path, output, annotations):
    from reelbeam.train import TrainError

    with pytest.raises(TrainError, match="--clip-model"):
        train_summaries(_cfg(output, annotations, tmp_path, queries=("a red car",)), progress=False, config=SMALL)


def test_train_mode_has_the_references_dropout():
    torch.manual_seed(0)
    model = ClipIt(SMALL)
    x, t = torch.randn(1, 10, 512), torch.randn(1, 1, SMALL.d_text)
    model.train()
    assert not torch.equal(model(x, t), model(x, t))
    model.eval()
    assert torch.equal(model(x, t), model(x, t))


def test_queries_are_encoded_by_the_clip_text_model(tmp_path, output, annotations):
    from tiny_clip import save_tiny_clip

    clip = save_tiny_clip(str(tmp_path / "clip"))
    cfg = _cfg(output, annotations, tmp_path / "q", queries=("a red car. people talking", "a person runs"), clip_model=clip, epochs=1)
    result = train_summaries(cfg, progress=False, config=SMALL)
    assert result["settings"]["queries"] == ["a red car. people talking", "a person runs"]
    assert result["epochs"][0]["val"]["fscore"] is not None


def test_starts_from_a_checkpoint(tmp_path, trained, output, annotations):
    out, _ = trained
    result = train_summaries(_cfg(output, annotations, tmp_path, checkpoint=str(out / "pytorch_model.pt"), epochs=1),
                             progress=False, config=SMALL)
    saved = torch.load(str(tmp_path / "pytorch_model.pt"), weights_only=True)
    start = torch.load(str(out / "pytorch_model.pt"), weights_only=True)
    assert result["settings"]["checkpoint"].endswith("pytorch_model.pt")
    assert torch.equal(saved["decoder.layer_norm.weight"], start["decoder.layer_norm.weight"])  # untrained, kept
    assert not torch.equal(saved["linear_2.weight"], start["linear_2.weight"])
