"""The CMD stage end to end: `--cmd-checkpoint` writes `video_embeddings` at both granularities,
equal to the network run on the reference's clips, also when starting from an earlier run's shots;
and the nearest shots of a shot are one DuckDB query away."""

import os

import av
import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import synthetic
import torch
from model_init import randomised

from reelbeam.models.r2plus1d import (
    R2Plus1D26,
    clip_tensor,
    load_r2plus1d,
    resize_clip_frame,
    save_modelscope_layout,
    shot_clip_indices,
    video_clip_indices,
)
from reelbeam.pipelines.cli import run
from reelbeam.pipelines.options import ConfigError

SHOTS = (40, 30, 70)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("cmd") / "pytorch_model.pt"
    save_modelscope_layout(randomised(R2Plus1D26().eval(), seed=5), str(path))
    return str(path)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return synthetic.make_shot_video(str(tmp_path_factory.mktemp("v") / "v.mp4"), SHOTS, width=160, height=120)


def expected(video, checkpoint, clips):
    with av.open(video) as c:
        frames = [resize_clip_frame(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    model = load_r2plus1d(checkpoint)
    x = torch.from_numpy(np.stack([clip_tensor(np.stack([frames[i] for i in clip])) for clip in clips]))
    with torch.inference_mode():
        return model(x).numpy().mean(axis=0)


def rows(out):
    table = pq.read_table(os.path.join(out, "video_embeddings")).to_pylist()
    return {(r["granularity"], r["shot_idx"]): r for r in table}


def check(got, video, checkpoint):
    spans = [(0, 39), (40, 69), (70, 139)]
    assert set(got) == {("video", None), ("shot", 0), ("shot", 1), ("shot", 2)}
    units = {("video", None): video_clip_indices(140)} | {("shot", i): shot_clip_indices(*s) for i, s in enumerate(spans)}
    for key, clips in units.items():
        row = got[key]
        assert row["num_clips"] == len(clips) and row["clip_frames"] == clips.reshape(-1).tolist()
        assert row["model"].startswith("cmd-r2plus1d26:pytorch_model.pt@")
        assert np.abs(np.asarray(row["embedding"]) - expected(video, checkpoint, clips)).max() <= 1e-4, key


def test_both_granularities_equal_the_network_on_the_reference_clips(tmp_path, video, checkpoint):
    out = str(tmp_path / "out")
    run(["--input", video, "--output", out, "--cmd-checkpoint", checkpoint])
    got = rows(out)
    check(got, video, checkpoint)
    # The nearest shots of shot 0 by cosine similarity, as docs/analytics.md shows.
    nearest = duckdb.sql(f"""
        WITH e AS (SELECT * FROM read_parquet('{out}/video_embeddings/*.parquet') WHERE granularity = 'shot')
        SELECT b.shot_idx, list_cosine_similarity(a.embedding, b.embedding) AS sim
        FROM e a JOIN e b ON a.video_id = b.video_id AND b.shot_idx <> a.shot_idx
        WHERE a.shot_idx = 0 ORDER BY sim DESC""").fetchall()
    assert [s for s, _ in nearest] and len(nearest) == 2 and nearest[0][1] >= nearest[1][1]


def test_from_an_earlier_runs_shots(tmp_path, video, checkpoint):
    out = str(tmp_path / "out")
    run(["--input", video, "--output", out])
    # (--scenes none: the default scenes read the shots too, so --start-from shots would redo them.)
    plan = run(["--output", out, "--start-from", "shots", "--cmd-checkpoint", checkpoint, "--no-json", "--scenes", "none"])
    assert plan.stage_names == ["video_embeddings"]
    check(rows(out), video, checkpoint)


def test_without_a_checkpoint_the_stage_is_skipped_with_one_line(tmp_path, video):
    from apache_beam.options.pipeline_options import PipelineOptions

    from reelbeam.pipelines.plan import build_plan

    plan = build_plan(PipelineOptions(["--input", video, "--output", str(tmp_path / "o")]))
    assert "video_embeddings" not in plan.stage_names
    assert [note for note in plan.env.notes if "--cmd-checkpoint" in note]


@pytest.mark.parametrize("flags, message", [
    (["--cmd-granularity", "frame"], "--cmd-granularity must name video, shot or both"),
    (["--cmd-checkpoint", "{bad}"], r"--cmd-checkpoint: .*bassl.pt is not .*R\(2\+1\)D-26.*228 missing"),
])
def test_bad_flags_are_refused(tmp_path, video, checkpoint, flags, message):
    bad = tmp_path / "bassl.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)
    with pytest.raises(ConfigError, match=message):
        run(["--input", video, "--output", str(tmp_path / "o"), *[f.format(bad=bad) for f in flags]])
