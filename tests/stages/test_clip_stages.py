"""The CLIP-It seed end to end on the bundled sample, with a tiny local CLIP and a CLIP-It
checkpoint in the published layout: frame embeddings, query scores from both scorers equal to the
models run directly, KTS + knapsack summaries equal to the reference algorithm, the JSON output, a
playable summary video; a new query from an earlier run's frame_embeddings without decoding; and
without CLIP weights the stages are skipped."""

import json
import os

import av
import numpy as np
import pytest
import torch
from apache_beam.options.pipeline_options import PipelineOptions
from tiny_clip import save_tiny_clip

import reelbeam
from reelbeam.pipelines.cli import run
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.plan import build_plan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "samples", "sintel_trailer_30s.mp4")
QUERY = "a person running"


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny-clip"))


@pytest.fixture(scope="module")
def clipit_checkpoint(tmp_path_factory):
    from reelbeam.models.clipit import ClipIt

    torch.manual_seed(0)
    model = ClipIt()
    state = model.state_dict()
    # A position table that is not the recomputed sinusoid: it must be read from the file.
    state["encoder.position_enc.pos_table"] = torch.randn_like(state["encoder.position_enc.pos_table"]) * 0.1
    path = tmp_path_factory.mktemp("clipit") / "pytorch_model.pt"
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, clip_model, clipit_checkpoint):
    out = str(tmp_path_factory.mktemp("clipit-run") / "out")
    plan = run([
        "--input", SAMPLE, "--output", out, "--clip-model", clip_model, "--clipit-checkpoint", clipit_checkpoint,
        "--query", QUERY, "--save-summary-video",
    ])
    return out, plan


def read(out, table):
    # reelbeam.read, not a directory scan: --save-summary-video writes its files under OUTPUT/summaries/
    return reelbeam.read(out, table).to_pylist()


def test_frame_embeddings_are_the_clip_features_of_every_15th_frame(full_run, clip_model):
    from reelbeam.models.clip import image_features, load_clip, preprocess

    out, plan = full_run
    assert {"clip_sampling", "frame_embeddings", "frame_scores", "summaries"} <= set(plan.stage_names)
    rows = sorted(read(out, "frame_embeddings"), key=lambda r: r["frame_idx"])
    assert [r["frame_idx"] for r in rows] == list(range(0, 720, 15))
    assert all(len(r["embedding"]) == 512 and r["normalised"] is False for r in rows)
    loaded = load_clip(clip_model)
    with av.open(SAMPLE) as c:
        frames = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in (0, 345, 705)}
    for r in rows:
        if r["frame_idx"] in frames:
            want = image_features(loaded.model, torch.from_numpy(preprocess(frames[r["frame_idx"]])[None]))[0].numpy()
            assert np.abs(np.asarray(r["embedding"]) - want).max() <= 1e-4, r["frame_idx"]


def test_both_scorers_equal_the_models_run_directly(full_run, clip_model, clipit_checkpoint):
    from reelbeam.models.clip import cosine_scores, encode_texts, load_clip
    from reelbeam.models.clipit import load_clipit, score_frames, text_block

    out, _ = full_run
    emb = sorted(read(out, "frame_embeddings"), key=lambda r: r["frame_idx"])
    feats = np.stack([np.asarray(r["embedding"], np.float32) for r in emb])
    loaded = load_clip(clip_model)
    text = encode_texts(loaded.model, loaded.tokenizer, [QUERY])
    want = {"clip": cosine_scores(feats, text)[0], "clipit": score_frames(load_clipit(clipit_checkpoint), feats, text_block(text))}
    scores = read(out, "frame_scores")
    assert {(r["scorer"], r["query"]) for r in scores} == {("clip", QUERY), ("clipit", QUERY)}
    for scorer, expected in want.items():
        got = np.asarray([r["score"] for r in sorted((s for s in scores if s["scorer"] == scorer), key=lambda s: s["frame_idx"])])
        assert np.abs(got - expected).max() <= 1e-5, scorer
    assert all(r["model"].startswith("clipit:pytorch_model.pt@") for r in scores if r["scorer"] == "clipit")


@pytest.fixture(scope="module")
def kts_run(full_run, clip_model, clipit_checkpoint, tmp_path_factory):
    """full_run's summaries again with --summary-segments kts, from its frame embeddings."""
    out, _ = full_run
    target = str(tmp_path_factory.mktemp("kts-run") / "out")
    plan = run(["--from", out, "--output", target, "--start-from", "frame_embeddings", "--clip-model", clip_model,
                "--clipit-checkpoint", clipit_checkpoint, "--query", QUERY, "--summary-segments", "kts"])
    return target, plan


def test_default_summaries_are_the_shots_split_to_the_budget_and_never_empty(full_run):
    """Issue #25: KTS on a tiny random CLIP's features gave one 720-frame segment, more than the
    15% budget, and the summaries kept nothing. By default the segments are the run's shots, each
    longer than the budget cut into pieces that fit, so the knapsack always has something to keep."""
    from reelbeam.transforms.summaries import shot_segments, summarize
    from reelbeam.transforms.summarize import knapsack_values

    out, plan = full_run
    assert plan.stage("summaries").segments == "shots"
    shots = sorted(read(out, "shots"), key=lambda r: r["shot_idx"])
    segments = shot_segments([(r["start_frame"], r["end_frame"]) for r in shots], 720, 0.15)
    assert len(segments) >= len(shots) and all(e - s + 1 <= int(720 * 0.15) for s, e in segments)
    emb = sorted(read(out, "frame_embeddings"), key=lambda r: r["frame_idx"])
    picks = [r["frame_idx"] for r in emb]
    rows = read(out, "summaries")
    for scorer in ("clip", "clipit"):
        scores = {r["frame_idx"]: r["score"] for r in read(out, "frame_scores") if r["scorer"] == scorer}
        summary = summarize(segments, knapsack_values([scores[f] for f in picks], scorer), picks, 720, 0.15)
        mine = sorted((r for r in rows if r["scorer"] == scorer), key=lambda r: r["segment_idx"])
        assert [(r["start_frame"], r["end_frame"]) for r in mine] == [tuple(map(int, s)) for s in segments]
        assert [i for i, r in enumerate(mine) if r["selected"]] == summary.selected
        assert summary.selected, scorer  # never empty
        if scorer == "clip":  # the knapsack weighs (1 + cos) / 2, the rows keep the mean cosine
            assert [r["score"] for r in mine] == pytest.approx([2 * v - 1 for v in summary.shot_scores], abs=1e-5)
        assert all(r["method"] == "shots+knapsack" for r in mine)
    assert not plan.notices


def test_summaries_are_kts_and_the_knapsack_as_the_reference(full_run, kts_run):
    from reelbeam.transforms.summaries import kts_change_points, shots_from_change_points, summarize
    from reelbeam.transforms.summarize import knapsack_values

    out, plan = kts_run
    emb = sorted(read(full_run[0], "frame_embeddings"), key=lambda r: r["frame_idx"])
    picks = [r["frame_idx"] for r in emb]
    shots = shots_from_change_points(kts_change_points(np.stack([r["embedding"] for r in emb])), picks, 720)
    rows = read(out, "summaries")
    for scorer in ("clip", "clipit"):
        scores = {r["frame_idx"]: r["score"] for r in read(out, "frame_scores") if r["scorer"] == scorer}
        summary = summarize(shots, knapsack_values([scores[f] for f in picks], scorer), picks, 720, 0.15)
        mine = sorted((r for r in rows if r["scorer"] == scorer), key=lambda r: r["segment_idx"])
        assert [(r["start_frame"], r["end_frame"]) for r in mine] == [tuple(map(int, s)) for s in summary.shots]
        assert [i for i, r in enumerate(mine) if r["selected"]] == summary.selected
        assert sum(r["end_frame"] - r["start_frame"] + 1 for r in mine if r["selected"]) <= 0.15 * 720
        assert all(r["method"] == "kts+knapsack" and r["budget"] == pytest.approx(0.15) for r in mine)
        if not summary.selected:  # the run summary says so, and what to change
            (note,) = [n for n in plan.notices if n.startswith("summaries:")]
            assert "selected nothing" in note and "--summary-segments shots" in note
            assert f"longest segment {max(r['end_frame'] - r['start_frame'] + 1 for r in mine)} frames, budget 108" in note


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
           (255, 255, 255), (0, 0, 0), (128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0)]


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory, clip_model, clipit_checkpoint):
    """12 one-colour shots of 60 frames with sound: different enough for the tiny CLIP that KTS
    cuts it into segments the 15% budget can hold (the sample's frames all look alike to it)."""
    import synthetic

    root = tmp_path_factory.mktemp("colours")
    frames = []
    for colour in COLOURS:
        img = np.zeros((96, 160, 3), np.uint8)
        img[:] = colour
        frames += [img] * 60
    video = synthetic.write_video_with_audio(str(root / "colours.mp4"), frames)
    out = str(root / "out")
    run(["--input", video, "--output", out, "--clip-model", clip_model, "--clipit-checkpoint", clipit_checkpoint,
         "--query", QUERY, "--save-summary-video"])
    return out


def test_the_json_and_a_playable_summary_video(colour_run):
    out = colour_run
    (doc,) = [json.load(open(os.path.join(out, "json", p))) for p in os.listdir(os.path.join(out, "json"))]
    summaries = {s["scorer"]: s for s in doc["summaries"]}
    assert set(summaries) == {"clip", "clipit"} and summaries["clip"]["query"] == QUERY
    video_id = doc["video_id"]
    files = sorted(os.listdir(os.path.join(out, "summaries", video_id)))
    for scorer in ("clip", "clipit"):
        selected = summaries[scorer]["output"]
        assert selected and all(set(o) == {"frame", "timestamps"} for o in selected)
        frames = sum(e - s + 1 for s, e in (o["frame"] for o in selected))
        assert 0 < frames <= 0.15 * 720
        (name,) = [f for f in files if f.endswith(f"-{scorer}.mp4")]
        with av.open(os.path.join(out, "summaries", video_id, name)) as c:
            decoded = sum(1 for _ in c.decode(video=0))
            audio = c.streams.audio[0] if c.streams.audio else None
            seconds = float(c.duration or 0) / 1e6
        assert decoded == frames and audio is not None
        assert seconds == pytest.approx(frames / 25, abs=0.15)


def test_a_new_query_from_an_earlier_runs_frame_embeddings(full_run, clip_model, tmp_path):
    out, _ = full_run
    target = str(tmp_path / "rescored")
    plan = run(["--from", out, "--output", target, "--start-from", "frame_embeddings", "--clip-model", clip_model,
                "--query", "a dragon in the sky"])
    assert plan.stage_names == ["frame_scores", "summaries", "modelscope_json"]
    scores = read(target, "frame_scores")
    assert {r["query"] for r in scores} == {"a dragon in the sky"} and len(scores) == 48
    assert read(target, "summaries")


def test_without_clip_weights_the_stages_are_skipped_and_a_query_is_an_error(tmp_path):
    plan = build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o"), "--clip-model", "openai/clip-vit-base-patch32"]))
    assert not {"clip_sampling", "frame_embeddings", "frame_scores", "summaries"} & set(plan.stage_names)
    # said once, in the run summary (the run's notes), not as a log line before validation ends
    skipped = [note for note in plan.env.notes if "CLIP frame scoring" in note]
    assert len(skipped) == 1 and "--clip-model" in skipped[0]
    with pytest.raises(ConfigError, match="--query needs CLIP weights"):
        build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o2"), "--query", "x"]))
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("flags, message", [
    (["--clip-sample", "every:0"], "--clip-sample must be every:N"),
    (["--summary-budget", "0"], "--summary-budget must be in"),
    (["--clipit-checkpoint", "{bad}"], "--clipit-checkpoint: .*not a CLIP-It scoring transformer checkpoint"),
])
def test_bad_clip_flags_are_refused(tmp_path, clip_model, flags, message):
    bad = tmp_path / "bad.pt"
    torch.save({"linear_txt.weight": torch.zeros(4, 4)}, bad)
    with pytest.raises(ConfigError, match=message):
        build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o"), "--clip-model", clip_model,
                                    *[f.format(bad=bad) for f in flags]]))


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """No model in the Hugging Face cache, whatever this machine holds."""
    import huggingface_hub.constants

    from reelbeam.stages import clip_scoring as clip

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    clip._problem.cache_clear()
    yield
    clip._problem.cache_clear()


DEFAULT = "the default --clip-model 'openai/clip-vit-base-patch32' is not in the local Hugging Face cache"
NO_WEIGHTS = "has no CLIP weights (expected config.json + model.safetensors/pytorch_model.bin)"


@pytest.mark.parametrize("flags, message", [
    (["--clip-model", "/no/such/clip"], "--clip-model '/no/such/clip' does not exist"),
    (["--clip-model", "memory://no/such/clip"], "--clip-model 'memory://no/such/clip' does not exist"),
    (["--clip-model", "{empty}"], "--clip-model '{empty}' " + NO_WEIGHTS),
    (["--clip-model", "no-such-org/no-such-clip"], "--clip-model 'no-such-org/no-such-clip' is not in the local Hugging Face cache"),
    (["--clip-scoring", "on"], "--clip-scoring on needs CLIP weights, and " + DEFAULT),
    (["--clip-scoring", "on", "--clip-model", "/no/such/clip"],
     "--clip-scoring on needs CLIP weights, and --clip-model '/no/such/clip' does not exist"),
    (["--query", "x", "--clip-model", "{empty}"], "--query needs CLIP weights, and --clip-model '{empty}' " + NO_WEIGHTS),
    (["--clipit-checkpoint", "/m/clipit.pt"], "--clipit-checkpoint needs CLIP weights, and " + DEFAULT),
    (["--save-summary-video"], "--save-summary-video needs CLIP weights, and " + DEFAULT),
])
def test_missing_clip_weights_name_what_is_missing_and_point_to_the_docs(tmp_path, empty_hf_cache, flags, message):
    """A path that does not exist, a folder without weights and an id that is not cached each say
    so (they used to be the wrong way round), and what asked for CLIP is named (`--clip-scoring on`
    used to blame --clip-model)."""
    empty = tmp_path / "clip-without-weights"
    empty.mkdir()
    (empty / "config.json").write_text('{"model_type": "clip"}')
    flags = [f.format(empty=empty) for f in flags]
    with pytest.raises(ConfigError) as err:
        build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o"), *flags]))
    text = str(err.value)
    assert text.startswith(message.format(empty=empty)), text
    assert text.endswith("; see docs/weights.md") and "\n" not in text
    assert not (tmp_path / "o").exists()


def test_the_skip_note_names_the_missing_model_and_the_docs(tmp_path, empty_hf_cache):
    plan = build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o")]))
    (note,) = [n for n in plan.env.notes if "CLIP frame scoring" in n]
    assert DEFAULT in note and note.endswith("(see docs/weights.md)")


def test_a_clip_model_of_another_width_is_refused_wherever_it_is(tmp_path):
    import fsspec

    wide = save_tiny_clip(str(tmp_path / "wide-clip"), projection_dim=256)
    fs = fsspec.filesystem("memory")
    for name in os.listdir(wide):
        fs.put_file(os.path.join(wide, name), f"/stages/wide-clip/{name}")
    for source in (wide, "memory://stages/wide-clip"):  # a URL's config.json is read too
        with pytest.raises(ConfigError, match=f"--clip-model '{source}' gives 256-d features"):
            build_plan(PipelineOptions(["--input", SAMPLE, "--output", str(tmp_path / "o"), "--clip-model", source]))
