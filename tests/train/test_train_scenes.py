"""`reelbeam train scenes`: tables written through the store, labels, 2 epochs on CPU; the checkpoint
loads through `--scene-checkpoint`'s loader in the published layout; determinism, resume, the split
by video, and the one-line mismatch errors."""

import json

import numpy as np
import pytest
import torch
from outputs import write_table

from reelbeam.models.bassl import BaSSL, load_bassl, save_modelscope_layout
from reelbeam.models.checkpoints import load_state_dict, model_id, tensor_shapes
from reelbeam.pipelines.cli import main
from reelbeam.stages.bassl import scene_checkpoint_layout
from reelbeam.train import TrainError
from reelbeam.train.labels import SceneLabels, check_against_shots
from reelbeam.train.scenes import SceneTrainConfig, balanced_cross_entropy, train_scenes
from reelbeam.train.split import split_videos

VIDEOS = ("film_a", "film_b", "film_c", "film_d")
SHOTS = 12
SCENE = 4  # a scene ends every 4 shots


def _frames(n=SHOTS):
    return np.array([(10 * i, 10 * i + 9) for i in range(n)], np.int64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ckpt") / "pytorch_model.pt")
    save_modelscope_layout(BaSSL(), path)
    return path


@pytest.fixture(scope="module")
def output(tmp_path_factory, checkpoint):
    """An output with videos, shots and shot_embeddings (scene-structured features), committed
    through the store, and one uncommitted data file that must never be read."""
    from reelbeam.schemas import schema_for
    from reelbeam.store import tables as store

    out = str(tmp_path_factory.mktemp("out") / "tables")
    emb_model = model_id("bassl-resnet50", checkpoint)
    rng = np.random.default_rng(0)
    videos, shots, embs = [], [], []
    for v, name in enumerate(VIDEOS):
        vid = f"{v:016x}"
        videos.append({"video_id": vid, "uri": f"/data/{name}.mp4", "status": "ok", "frame_count": 10 * SHOTS,
                       "avg_fps": 24.0, "nominal_fps": 24.0, "duration_s": 10 * SHOTS / 24,
                       "num_shots": SHOTS})
        bases = rng.standard_normal((SHOTS // SCENE, 2048)).astype(np.float32)
        for i, (s, e) in enumerate(_frames()):
            sid = f"{vid}-{i}"
            shots.append({"video_id": vid, "shot_idx": i, "shot_id": sid, "start_frame": int(s), "end_frame": int(e),
                          "start_time": s / 24, "end_time": (e + 1) / 24, "num_frames": int(e - s + 1)})
            vec = bases[i // SCENE] + 0.3 * rng.standard_normal(2048).astype(np.float32)
            embs.append({"video_id": vid, "shot_id": sid, "shot_idx": i, "model": emb_model, "embedding": vec.tolist()})
    write_table(out, "videos", videos)
    write_table(out, "shots", shots)
    write_table(out, "shot_embeddings", embs)
    junk = [dict(r, embedding=[9.0] * 2048) for r in embs[:SHOTS]]  # a run that never committed
    store.write_data_file(store.table_uri(out, "shot_embeddings"),
                          "shot_embeddings", __import__("pyarrow").Table.from_pylist(junk, schema=schema_for("shot_embeddings")),
                          store.new_run_id(), "bassl_encoder")
    return out


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    """MovieNet-style JSON labels (what `reelbeam evaluate movienet` reads)."""
    path = tmp_path_factory.mktemp("labels") / "labels.json"
    data = {n: {"labels": [int(i % SCENE == SCENE - 1) for i in range(SHOTS)], "shots": _frames().tolist()} for n in VIDEOS}
    path.write_text(json.dumps(data))
    return str(path)


def _cfg(output, labels, checkpoint, out, **kw):
    return SceneTrainConfig(outputs=(output,), labels=labels, checkpoint=checkpoint, out=str(out), epochs=2,
                            batch_size=32, seed=3, val_fraction=0.25, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, output, labels, checkpoint):
    out = tmp_path_factory.mktemp("trained")
    rc = main(["train", "scenes", "--from", output, "--labels", labels, "--checkpoint", checkpoint, "--out", str(out),
               "--epochs", "2", "--batch-size", "32", "--seed", "3", "--val-fraction", "0.25", "--quiet"])
    assert rc == 0
    return out


def test_end_to_end_checkpoint_loads_as_scene_checkpoint(trained, checkpoint):
    path = str(trained / "pytorch_model.pt")
    assert scene_checkpoint_layout(path) == "full"  # what `reelbeam run --scene-checkpoint` checks first
    loaded = load_bassl(path)  # ... and how its stages load it
    assert loaded.has_head and loaded.source_format == "modelscope"
    assert tensor_shapes(path) == tensor_shapes(checkpoint)  # the published layout, buffers included
    new, old = load_state_dict(path), load_state_dict(checkpoint)
    assert all(torch.equal(new[k], old[k]) for k in old if k.startswith("shot_encoder."))  # frozen
    assert not torch.equal(new["crn.encoder.layer.0.output.dense.weight"], old["crn.encoder.layer.0.output.dense.weight"])


def test_metrics_json_per_epoch_with_settings_and_split(trained):
    m = json.loads((trained / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    for e in m["epochs"]:
        assert {"ap", "f1", "recall", "recall_at_3s", "miou"} <= set(e["val"])
        assert np.isfinite(e["train_loss"])
    assert m["best_epoch"] in (1, 2)
    assert m["best"]["f1"] == max(e["val"]["f1"] for e in m["epochs"])
    s = m["settings"]
    assert s["from_scratch"] is False and s["base_lr"] == 2.5e-6 and s["lr"] == pytest.approx(2.5e-6 * 32 / 256)
    assert s["epochs"] == 2 and s["seed"] == 3 and s["window"] == 17
    train, val = m["split"]["train"], m["split"]["val"]
    assert sorted(train + val) == sorted(VIDEOS) and not set(train) & set(val) and len(val) == 1
    assert m["samples"]["train_shots"] == 3 * SHOTS  # whole videos: every labelled shot of the 3 train films
    assert m["epochs"][-1]["lr_end"] == pytest.approx(0.0, abs=1e-12)  # cosine decayed to 0


def test_same_seed_same_model(tmp_path, trained, output, labels, checkpoint):
    result = train_scenes(_cfg(output, labels, checkpoint, tmp_path), progress=False)
    first = json.loads((trained / "metrics.json").read_text())
    assert [e["train_loss"] for e in result["epochs"]] == [e["train_loss"] for e in first["epochs"]]
    a, b = load_state_dict(str(tmp_path / "pytorch_model.pt")), load_state_dict(str(trained / "pytorch_model.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_as_if_never_stopped(tmp_path, trained, output, labels, checkpoint):
    class Stop(Exception):
        pass

    def stop_after_first(epoch):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train_scenes(_cfg(output, labels, checkpoint, tmp_path), progress=False, on_epoch=stop_after_first)
    assert len(json.loads((tmp_path / "metrics.json").read_text())["epochs"]) == 1
    with pytest.raises(TrainError, match="settings differ.*seed"):
        train_scenes(dataclass_replace(_cfg(output, labels, checkpoint, tmp_path), resume=True, seed=4), progress=False)
    result = train_scenes(dataclass_replace(_cfg(output, labels, checkpoint, tmp_path), resume=True), progress=False)
    first = json.loads((trained / "metrics.json").read_text())
    assert [e["train_loss"] for e in result["epochs"]] == [e["train_loss"] for e in first["epochs"]]
    a, b = load_state_dict(str(tmp_path / "pytorch_model.pt")), load_state_dict(str(trained / "pytorch_model.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_label_count_mismatch_is_one_line_naming_the_first(tmp_path, output, checkpoint, capsys):
    frames = _frames(SHOTS + 1)
    frames[7] = (70, 75)  # the labels' shot 7 ends earlier: the first disagreement
    data = {n: {"labels": [0] * (SHOTS + 1), "shots": frames.tolist()} for n in VIDEOS}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    rc = main(["train", "scenes", "--from", output, "--labels", str(path), "--checkpoint", checkpoint, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "the labels count 13 shots, the shots table 12" in err and "first mismatch: shot 7 is frames 70-75" in err
    assert "film_a" in err


def test_bassl_ndjson_ids_beyond_the_shots(tmp_path, output, checkpoint, capsys):
    rows = [{"video_id": n, "shot_id": f"{i:04d}", "num_shot": SHOTS - 1, "boundary_label": -1 if i == 4 else 0}
            for n in VIDEOS for i in range(SHOTS)]
    rows.append({"video_id": "film_b", "shot_id": "0025", "num_shot": SHOTS - 1, "boundary_label": 0})
    path = tmp_path / "anno.train.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rc = main(["train", "scenes", "--from", output, "--labels", str(path), "--checkpoint", checkpoint, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "film_b" in err and "first mismatch: shot id 25 is labelled" in err


def test_unknown_video_is_named(tmp_path, output, checkpoint, capsys):
    path = tmp_path / "toy.json"  # ModelScope toydata: a JSON list
    path.write_text(json.dumps([{"video_id": "tt0000001", "shot_id": "0000", "num_shot": 3, "boundary_label": 1}]))
    rc = main(["train", "scenes", "--from", output, "--labels", str(path), "--checkpoint", checkpoint, "--out", str(tmp_path / "o")])
    assert rc == 2 and "first 'tt0000001'" in capsys.readouterr().err


def test_split_is_by_video_seeded_and_from_files(tmp_path):
    names = [f"v{i}" for i in range(10)]
    a = split_videos(names, val_fraction=0.3, seed=1)
    assert a == split_videos(list(reversed(names)), val_fraction=0.3, seed=1)  # seeded, order-free
    assert len(a[1]) == 3 and sorted(a[0] + a[1]) == sorted(names) and not set(a[0]) & set(a[1])
    assert a != split_videos(names, val_fraction=0.3, seed=2)
    split = tmp_path / "split318.json"
    split.write_text(json.dumps({"train": ["v0", "v1", "zz"], "val": ["v2"], "test": ["v3"]}))
    assert split_videos(names, str(split)) == (["v0", "v1"], ["v2"])
    assert split_videos(names, str(split), val_key="test") == (["v0", "v1"], ["v3"])
    pgl = tmp_path / "tvsum_splits.json"
    pgl.write_text(json.dumps([{"train_keys": ["v0"], "test_keys": ["v1"]}, {"train_keys": ["v1"], "test_keys": ["v0"]}]))
    assert split_videos(names, str(pgl), split_index=1) == (["v1"], ["v0"])
    split.write_text(json.dumps({"train": ["v0", "v1"], "val": ["v1"]}))
    with pytest.raises(TrainError, match="'v1' is in both"):
        split_videos(names, str(split))


def test_scene_spans_become_labels_on_the_nearest_shot_end():
    frames = _frames(6)  # shots end at 9, 19, ..., 59
    labels = check_against_shots("v", "v.mp4", SceneLabels(scenes=np.array([[0, 21], [22, 38], [39, 59]])), frames)
    assert [labels[i] for i in range(6)] == [0, 1, 0, 1, 0, 0]
    with pytest.raises(TrainError, match="a scene ends at frame 80"):
        check_against_shots("v", "v.mp4", SceneLabels(scenes=np.array([[0, 80]])), frames)


def test_balanced_loss_weighs_classes_equally():
    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([1, 0, 0, 0])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = 0.5 * ce[0] / (1 + 1e-5) + 0.5 * ce[1:].sum() / (3 + 1e-5)
    torch.testing.assert_close(balanced_cross_entropy(logits, y), expected)


def test_trained_checkpoint_scores_in_a_pipeline_run(tmp_path, trained, output):
    """The checkpoint as `reelbeam run --scene-checkpoint` takes it: boundaries and scenes again from
    the same shot embeddings (--start-from), with the trained CRN."""
    from reelbeam import read
    from reelbeam.pipelines.cli import run

    out2 = str(tmp_path / "rescored")
    run(["--output", out2, "--from", output, "--start-from", "shot_embeddings",
         "--scene-checkpoint", str(trained / "pytorch_model.pt")])
    b = read(out2, "boundaries").to_pylist()
    assert len(b) == len(VIDEOS) * SHOTS and all(0 <= r["p_boundary"] <= 1 for r in b)
    assert {r["model"].split(":")[0] for r in b} == {"bassl-crn"}
    assert len(read(out2, "scenes").to_pylist()) >= len(VIDEOS)


def test_from_scratch_uses_the_baseline_lr_and_a_fresh_crn(tmp_path, output, labels, checkpoint):
    result = train_scenes(dataclass_replace(_cfg(output, labels, checkpoint, tmp_path), from_scratch=True, epochs=1),
                          progress=False)
    s = result["settings"]
    assert s["from_scratch"] is True and s["base_lr"] == 2.5e-5 and s["lr"] == pytest.approx(2.5e-5 * 32 / 256)
    new, old = load_state_dict(str(tmp_path / "pytorch_model.pt")), load_state_dict(checkpoint)
    # one step of lr 3e-6 cannot undo a fresh init: the CRN is not the checkpoint's
    assert (new["crn.shot_embedding.shot_embedding.weight"] - old["crn.shot_embedding.shot_embedding.weight"]).abs().max() > 1e-3
    assert scene_checkpoint_layout(str(tmp_path / "pytorch_model.pt")) == "full"


def test_embeddings_of_another_encoder_are_refused(tmp_path, output, labels):
    other = str(tmp_path / "other.pt")
    torch.manual_seed(1)
    save_modelscope_layout(BaSSL(), other)
    with pytest.raises(TrainError, match="made by bassl-resnet50:pytorch_model.pt@.*not by .*other.pt"):
        train_scenes(_cfg(output, labels, other, tmp_path / "o"), progress=False)
    with pytest.raises(TrainError, match="nothing to resume"):
        train_scenes(dataclass_replace(_cfg(output, labels, other, tmp_path / "none"), resume=True), progress=False)
    assert not (tmp_path / "none").exists()


def test_a_shot_without_its_embedding_is_named(tmp_path, labels, checkpoint):
    from reelbeam import read

    out = str(tmp_path / "gappy")
    write_table(out, "videos", [{"video_id": "a" * 16, "uri": "/data/film_a.mp4", "status": "ok"},
                                {"video_id": "b" * 16, "uri": "/data/film_b.mp4", "status": "ok"}])
    write_table(out, "shots", [{"video_id": v * 16, "shot_idx": i, "shot_id": f"{v}{i}", "start_frame": int(s), "end_frame": int(e)}
                               for v in "ab" for i, (s, e) in enumerate(_frames())])
    emb = model_id("bassl-resnet50", checkpoint)
    write_table(out, "shot_embeddings", [{"video_id": v * 16, "shot_id": f"{v}{i}", "shot_idx": i, "model": emb,
                                          "embedding": [0.0] * 2048} for v in "ab" for i in range(SHOTS) if (v, i) != ("b", 3)])
    assert len(read(out, "shot_embeddings")) == 2 * SHOTS - 1
    with pytest.raises(TrainError, match=r"shot_embeddings of /data/film_b.mp4 do not match its shots: 11 embeddings for 12 shots; first missing shot 3"):
        train_scenes(dataclass_replace(_cfg(out, labels, checkpoint, tmp_path / "o"), skip_unmatched=True), progress=False)
