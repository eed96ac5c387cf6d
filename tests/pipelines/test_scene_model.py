"""The BaSSL path end to end with a checkpoint in ModelScope's layout: shot keyframes, each shot
encoded once, CRN boundaries, model scenes and the ModelScope-shaped JSON."""

import io
import json
import os

import apache_beam as beam
import av
import numpy as np
import pytest
import synthetic
import torch
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from fakes import FakeTransitionHandler
from PIL import Image
from process_videos import ProcessVideos

from reelbeam.models.bassl import (
    BaSSL,
    BoundaryHandler,
    load_bassl,
    preprocess_transform,
    save_modelscope_layout,
)
from reelbeam.models.checkpoints import model_id
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.plan import build_plan
from reelbeam.transforms.keyframes import KeyframePlan, extract_keyframes, shot_keyframe_indices
from reelbeam.transforms.scene_model import scenes_from_probabilities


def embeddings_match_model(rows, checkpoint):
    """Each embedding is the model's mean over its shot's 3 stored keyframes. The model is loaded
    here from the path: a model captured in a Beam closure would be pickled with every step."""
    model = load_bassl(checkpoint).model
    tf = preprocess_transform()
    keyframes = [r for kind, r in rows if kind == "kf"]
    embeddings = [r for kind, r in rows if kind == "emb"]
    for e in embeddings:
        kfs = sorted((k for k in keyframes if k["shot_idx"] == e["shot_idx"]), key=lambda k: k["keyframe_idx"])
        x = torch.stack([tf(Image.open(io.BytesIO(k["jpeg"])).convert("RGB")) for k in kfs])[None]
        expected = model.encode_shots(x)[0].numpy()
        assert np.abs(np.asarray(e["embedding"]) - expected).max() <= 1e-4
    return len(embeddings)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("bassl") / "pytorch_model.pt"
    save_modelscope_layout(BaSSL().eval(), str(path))
    return str(path)


def test_keyframe_indices_follow_lgss():
    assert shot_keyframe_indices(0, 72) == (0, 36, 72)
    assert shot_keyframe_indices(10, 11) == (10, 10, 11)
    assert shot_keyframe_indices(5, 5) == (5, 5, 5)


@pytest.mark.parametrize("threshold, expected", [(0.8, [(0, 1), (2, 3)]), (0.95, [(0, 3)]), (0.1, [(0, 0), (1, 1), (2, 2), (3, 3)])])
def test_scene_grouping_as_modelscope(threshold, expected):
    assert scenes_from_probabilities(np.array([0.2, 0.9, 0.3, 0.5]), threshold) == expected


@pytest.mark.parametrize("gop", [None, 10])
def test_second_pass_fetches_exactly_the_planned_frames(tmp_path, gop):
    path = str(tmp_path / "v.mp4")
    kw = {"gop": gop, "options": {"preset": "ultrafast", "sc_threshold": "0", "keyint_min": "10"}} if gop else {}
    synthetic.make_shot_video(path, (25, 20, 30), width=96, height=64, **kw)
    with av.open(path) as c:
        frames = list(c.decode(video=0))
        pts = np.asarray([f.pts for f in frames], dtype=object)
        key = np.asarray([f.key_frame for f in frames], bool)
        rgb = [f.to_ndarray(format="rgb24") for f in frames]
    targets = tuple(sorted((f, s, f"s{s}", k) for s, (a, b) in enumerate([(0, 24), (25, 44), (45, 74)]) for k, f in enumerate(shot_keyframe_indices(a, b))))
    plan = KeyframePlan("v", path, os.path.getsize(path), targets, pts, key)
    rows = list(extract_keyframes(plan, quality=100))
    assert sorted((r["frame_idx"], r["shot_idx"], r["keyframe_idx"]) for r in rows) == sorted((f, s, k) for f, s, _, k in targets)
    for r in rows:
        img = np.asarray(Image.open(io.BytesIO(r["jpeg"])))
        assert np.abs(img.astype(int) - rgb[r["frame_idx"]]).mean() < 3, r["frame_idx"]


def test_full_bassl_path_end_to_end(tmp_path, checkpoint):
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 50))
    cfg = build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "out"), "--scene-checkpoint", checkpoint]))
    def check_embeddings(rows):
        rows = sorted(rows, key=lambda r: r["shot_idx"])
        assert [r["shot_idx"] for r in rows] == [0, 1, 2], "each shot encoded exactly once"
        assert all(len(r["embedding"]) == 2048 for r in rows)
        return True

    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["keyframes"] | beam.Map(lambda r: (r["kind"], r["shot_idx"], r["keyframe_idx"], r["frame_idx"])),
            equal_to([("shot", s, k, f) for s, span in enumerate([(0, 39), (40, 69), (70, 119)]) for k, f in enumerate(shot_keyframe_indices(*span))]),
            label="keyframes",
        )
        assert_that(out["shot_embeddings"] | beam.combiners.ToList() | beam.Map(check_embeddings), equal_to([True]), label="emb")
        tagged = (
            out["keyframes"] | "TagKf" >> beam.Map(lambda r: ("kf", r)),
            out["shot_embeddings"] | "TagEmb" >> beam.Map(lambda r: ("emb", r)),
        ) | "Both" >> beam.Flatten()
        assert_that(
            tagged | "AllRows" >> beam.combiners.ToList() | "CheckModel" >> beam.Map(embeddings_match_model, checkpoint),
            equal_to([3]),
            label="model",
        )
        assert_that(out["boundaries"] | beam.Map(lambda b: (b["shot_idx"], 0 <= b["p_boundary"] <= 1)), equal_to([(0, True), (1, True), (2, True)]), label="p")
        assert_that(
            out["scenes"] | beam.Map(lambda s: s["method"]) | beam.Distinct(), equal_to(["bassl(threshold=0.8)"]), label="scenes"
        )
    (doc,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "json").glob("*.json")]
    assert doc["shot_num"] == 3 and doc["scene_num"] >= 1 and len(doc["scene_meta_list"]) == doc["scene_num"]


def test_pretraining_checkpoint_gives_shot_embeddings_and_training_free_scenes(tmp_path, checkpoint):
    """A BaSSL Lightning .ckpt from pre-training has no boundary head: it encodes shots, and the
    scenes stay training-free (as --scene-checkpoint's help says)."""
    state = {k: v for k, v in torch.load(checkpoint, weights_only=True).items() if not k.startswith("head_sbd.")}
    path = tmp_path / "model-v1.ckpt"
    torch.save({"state_dict": {**state, "loss.head_pp.weight": torch.zeros(2, 768)}}, path)
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30))
    plan = build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o"), "--scene-checkpoint", str(path)]))
    assert plan.running("bassl_encoder") and not plan.running("boundaries") and not plan.running("model_scenes")
    assert plan.running("grouping_scenes")
    with TestPipeline() as p:
        out = p | ProcessVideos(plan, transition_handler=FakeTransitionHandler())
        assert_that(out["shot_embeddings"] | beam.Map(lambda r: r["shot_idx"]), equal_to([0, 1]), label="emb")
        assert_that(out["scenes"] | beam.Map(lambda s: s["method"].split("(")[0]) | beam.Distinct(), equal_to(["grouping"]), label="scenes")
        assert "boundaries" not in out


def test_scrl_encoder_alone_and_beside_bassl(tmp_path, checkpoint):
    from reelbeam.models.scrl import SCRLEncoder, save_moco_layout

    torch.manual_seed(2)
    scrl = str(tmp_path / "scrl.pth.tar")
    save_moco_layout(SCRLEncoder().eval(), scrl)
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 50))

    def run(extra):
        cfg = build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o"), "--overwrite", *extra]))
        return cfg

    alone = run(["--scrl-checkpoint", scrl])
    both = run(["--scrl-checkpoint", scrl, "--scene-checkpoint", checkpoint])
    with TestPipeline() as p:
        out = p | "Alone" >> ProcessVideos(alone, transition_handler=FakeTransitionHandler())
        assert_that(
            out["shot_embeddings"] | beam.Map(lambda r: (r["model"], r["shot_idx"], len(r["embedding"]))),
            equal_to([(model_id("scrl-resnet50", scrl), s, 2048) for s in range(3)]),
            label="scrl_rows",
        )
        assert "boundaries" not in out
        assert_that(out["scenes"] | beam.Map(lambda s: s["method"].split("(")[0]) | beam.Distinct(), equal_to(["grouping"]), label="scenes")
        assert_that(out["keyframes"] | beam.Map(lambda r: r["kind"]) | beam.combiners.Count.PerElement(), equal_to([("shot", 9)]), label="kf")
    with TestPipeline() as p:
        out = p | "Both" >> ProcessVideos(both, transition_handler=FakeTransitionHandler())
        assert_that(
            out["shot_embeddings"] | beam.Map(lambda r: r["model"].split(":")[0]) | beam.combiners.Count.PerElement(),
            equal_to([("scrl-resnet50", 3), ("bassl-resnet50", 3)]),
            label="both_rows",
        )
        assert_that(out["scenes"] | beam.Map(lambda s: s["method"]) | beam.Distinct(), equal_to(["bassl(threshold=0.8)"]), label="bassl_scenes")


def test_wrong_scrl_checkpoint_is_refused_before_the_run(tmp_path, checkpoint):
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (10,))
    with pytest.raises(ConfigError, match="--scrl-checkpoint: .*BaSSL.*--scene-checkpoint"):
        build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o"), "--scrl-checkpoint", checkpoint]))


@pytest.mark.parametrize("buffer_mb, second_pass_frames", [(512, []), (30, [169])])
def test_shot_keyframes_come_from_the_decode_pass(tmp_path, checkpoint, monkeypatch, buffer_mb, second_pass_frames):
    """CPU default: TransNetV2 in the decode pass, keyframes captured there. A 30 MB buffer holds
    about 90 frames of 640x360: enough for every keyframe but the middle (169) of the 200-frame
    shot, which the second pass then fetches; the rows are the same either way."""
    import reelbeam.transforms.keyframes as kf

    fetched = []
    real = kf.extract_keyframes

    def spy(plan, *a, **k):
        fetched.extend(t[0] for t in plan.targets)
        return real(plan, *a, **k)

    monkeypatch.setattr(kf, "extract_keyframes", spy)
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 200), width=640, height=360)
    cfg = build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "out"), "--scene-checkpoint", checkpoint, "--keyframe-buffer-mb", str(buffer_mb)]))
    assert cfg.stage("shots").inline and cfg.stage("shots").capture
    expected = [("shot", s, k, f) for s, span in enumerate([(0, 39), (40, 69), (70, 269)]) for k, f in enumerate(shot_keyframe_indices(*span))]
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(out["keyframes"] | beam.Map(lambda r: (r["kind"], r["shot_idx"], r["keyframe_idx"], r["frame_idx"])), equal_to(expected), label="kf")
        assert_that(out["shot_embeddings"] | beam.Map(lambda r: r["shot_idx"]), equal_to([0, 1, 2]), label="emb")
        assert_that(out["failures"], equal_to([]), label="no_failures")
    assert fetched == second_pass_frames


def test_crn_windows_of_several_videos_share_batches(checkpoint, monkeypatch):
    from reelbeam.models import bassl
    from reelbeam.transforms.scene_model import ScoreBoundaries

    batches = []
    real = bassl.BoundaryHandler.run_inference

    def spy(self, batch, model, inference_args=None):
        # Which video each window belongs to: its centre row is that video's shot feature.
        batches.append({"a" if any(np.array_equal(w[8], f) for f in feats["a"]) else "b" for w in batch})
        return real(self, batch, model, inference_args)

    monkeypatch.setattr(bassl.BoundaryHandler, "run_inference", spy)
    rng = np.random.default_rng(0)
    feats = {"a": rng.normal(size=(5, 2048)).astype(np.float32), "b": rng.normal(size=(7, 2048)).astype(np.float32)}
    rows = [{"video_id": v, "shot_idx": i, "shot_id": f"{v}{i}", "model": "bassl-resnet50:m", "embedding": f[i].tolist()} for v, f in feats.items() for i in range(len(f))]
    model = load_bassl(checkpoint).model
    expected = {(v, i): float(p) for v, f in feats.items() for i, p in enumerate(model.boundary_probabilities(torch.from_numpy(f)).numpy())}

    def check(got):
        assert sorted((r["video_id"], r["shot_idx"]) for r in got) == sorted(expected)
        for r in got:
            assert abs(r["p_boundary"] - expected[(r["video_id"], r["shot_idx"])]) <= 1e-5
            assert r["shot_id"] == f"{r['video_id']}{r['shot_idx']}"
        return True

    with TestPipeline() as p:
        out = p | beam.Create(rows) | ScoreBoundaries(BoundaryHandler(checkpoint, "cpu"), "bassl-crn:m")
        assert_that(out["boundaries"] | beam.combiners.ToList() | beam.Map(check), equal_to([True]), label="p")
        assert_that(out["failures"], equal_to([]), label="none_failed")
    assert {"a", "b"} in batches, batches  # a batch held windows of both videos


def test_a_failing_crn_gives_one_failure_per_video_and_no_partial_boundaries(checkpoint, monkeypatch):
    from reelbeam.models import bassl
    from reelbeam.transforms.scene_model import ScoreBoundaries

    def boom(self, batch, model, inference_args=None):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(bassl.BoundaryHandler, "run_inference", boom)
    rows = [{"video_id": v, "shot_idx": i, "shot_id": f"{v}{i}", "model": "bassl-resnet50:m", "embedding": [0.0] * 2048} for v in "ab" for i in range(3)]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | ScoreBoundaries(BoundaryHandler(checkpoint, "cpu", max_batch_size=2), "bassl-crn:m")
        assert_that(out["boundaries"], equal_to([]), label="none")
        assert_that(
            out["failures"] | beam.Map(lambda r: (r["video_id"], r["stage"], r["error_type"], "out of memory" in r["message"])),
            equal_to([("a", "boundary_model", "inference_error", True), ("b", "boundary_model", "inference_error", True)]),
            label="one_each",
        )


def test_a_failing_shot_encoder_is_a_failures_row_with_the_videos_uri(tmp_path, checkpoint, monkeypatch):
    from reelbeam.models import bassl

    def boom(self, batch, model, inference_args=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(bassl.ShotEncoderHandler, "run_inference", boom)
    path = str(tmp_path / "a.mp4")
    synthetic.make_shot_video(path, (40, 30))
    cfg = build_plan(PipelineOptions(["--input", path, "--output", str(tmp_path / "out"), "--scene-checkpoint", checkpoint]))
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["failures"] | beam.Map(lambda r: (r["stage"], r["error_type"], r["uri"])),
            equal_to([("shot_encoder", "inference_error", path)]),
            label="failure",
        )
        assert_that(out["videos"] | beam.Map(lambda r: r["status"]), equal_to(["ok"]), label="video_row_stays")
        assert_that(out["boundaries"], equal_to([]), label="no_boundaries")


def test_shot_keyframes_without_any_encoder(tmp_path):
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 50))
    cfg = build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "out"), "--shot-keyframes"]))
    assert cfg.running("shot_keyframes") and not cfg.running("bassl_encoder")
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["keyframes"] | beam.Map(lambda r: (r["kind"], r["shot_idx"], r["keyframe_idx"], r["frame_idx"])),
            equal_to([("shot", s, k, f) for s, span in enumerate([(0, 39), (40, 69), (70, 119)]) for k, f in enumerate(shot_keyframe_indices(*span))]),
        )
        assert "shot_embeddings" not in out and "boundaries" not in out
    with pytest.raises(ConfigError, match="--iframes-only"):
        build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o2"), "--shot-keyframes", "--iframes-only"]))
