"""What runs and where its tables come from, decided before the pipeline starts."""

import os
import shutil

import pyarrow.parquet as pq
import pytest
import synthetic
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam.pipelines.cli import run
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.plan import build_plan, settings_diff
from reelbeam.store.tables import active_files, part_name


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier run's output: decode, shots, shot keyframes (no encoder)."""
    root = tmp_path_factory.mktemp("earlier")
    video = synthetic.make_shot_video(str(root / "a.mp4"), (20, 20), width=64, height=48)
    out = str(root / "out")
    run(["--input", video, "--output", out, "--shot-keyframes"])
    return video, out


def plan(*args):
    return build_plan(PipelineOptions(list(args)))


def test_a_full_run_runs_every_enabled_stage_in_registry_order(tmp_path, earlier):
    video, _ = earlier
    p = plan("--input", video, "--output", str(tmp_path / "o"), "--shot-keyframes")
    assert p.stage_names == ["decode", "shots", "motion_stats", "grouping_scenes", "shot_keyframes", "modelscope_json"]
    assert p.stored == {}


def test_start_from_runs_what_is_downstream_and_reads_the_rest(tmp_path, earlier):
    _, out = earlier
    target = str(tmp_path / "o")
    p = plan("--output", target, "--from", out, "--start-from", "shots", "--shot-keyframes")
    # The default scenes (grouping, after the decode pass) read the shots: they are made again.
    assert p.stage_names == ["grouping_scenes", "shot_keyframes", "modelscope_json"]
    assert set(p.stored) == {"videos", "frames", "shots"}
    p = plan("--output", str(tmp_path / "o2"), "--from", out, "--start-from", "shots", "--shot-keyframes", "--scenes", "none")
    assert p.stage_names == ["shot_keyframes", "modelscope_json"]
    assert all(part.path.startswith(out) for parts in p.stored.values() for part in parts)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start-from", "kefyrames"], "unknown table 'kefyrames'"),
        (["--start-from", "keyframes", "--stages", "decode"], "give one of them"),
        (["--start-from", "keyframes"], "no enabled stage reads it; turn on a stage downstream"),
        (["--start-from", "shot_embeddings", "--scene-checkpoint", "{ckpt}"], "holds no committed `shot_embeddings`"),
        (["--stages", "decoder"], "unknown stage 'decoder'"),
        (["--stages", "shots"], "runs inside the decode pass; name `decode`"),
        (["--stages", "scene_clips"], "stage scene_clips is off with these flags; turn it on with --save-scene-clips"),
        (["--stages", "shot_keyframes", "--shot-keyframes", "--from", "{empty}"], "needs table `videos`"),
    ],
)
def test_what_cannot_run_is_refused_with_what_to_change(tmp_path, earlier, args, message):
    _, out = earlier
    (tmp_path / "empty").mkdir()
    ckpt = tmp_path / "ckpt.pt"
    fmt = {"ckpt": str(ckpt), "empty": str(tmp_path / "empty")}
    if "{ckpt}" in args:
        import torch

        from reelbeam.models.bassl import BaSSL, save_modelscope_layout

        save_modelscope_layout(BaSSL(), str(ckpt))
        del torch
    with pytest.raises(ConfigError, match=message):
        plan("--output", str(tmp_path / "o"), "--from", out, *[a.format(**fmt) for a in args])


def test_a_stage_needing_a_table_nothing_makes_names_the_flag(tmp_path, earlier):
    video, _ = earlier
    with pytest.raises(ConfigError, match=r"scene_clips needs table `scenes`, which no enabled stage writes: .*--scenes histogram.*--scene-checkpoint"):
        plan("--input", video, "--output", str(tmp_path / "o"), "--save-scene-clips", "--scenes", "none")


def test_files_of_another_schema_version_are_refused(tmp_path, earlier):
    _, out = earlier
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    part = active_files(copy, "shots")[0].path
    table = pq.read_table(part)
    meta = dict(table.schema.metadata)
    meta[b"reelbeam.schema_version"] = b"0"
    pq.write_table(table.replace_schema_metadata(meta), part)
    with pytest.raises(ConfigError, match="schema version 0 .*re-run the stage"):
        plan("--output", str(tmp_path / "o"), "--from", copy, "--start-from", "shots", "--shot-keyframes")


def test_only_committed_files_are_read(tmp_path, earlier):
    _, out = earlier
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    stray = os.path.join(copy, "shots", part_name("20991231T000000Z-dead", "shots"))  # written, never committed
    shutil.copy(active_files(copy, "shots")[0].path, stray)
    p = plan("--output", str(tmp_path / "o"), "--from", copy, "--start-from", "shots", "--shot-keyframes")
    assert stray not in [part.path for part in p.stored["shots"]]


def test_a_second_job_into_the_same_output_adds_its_stages_and_a_rerun_needs_a_choice(tmp_path, earlier):
    video, out = earlier
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    p = plan("--output", copy, "--start-from", "scenes", "--save-scene-clips")
    assert p.stage_names == ["scene_clips", "modelscope_json"]  # the JSON is rewritten, not added to
    with pytest.raises(ConfigError, match="already holds what this run writes.*stage shot_keyframes"):
        plan("--input", video, "--output", copy, "--shot-keyframes")


def test_a_bad_checkpoint_fails_before_the_output_exists(tmp_path, earlier):
    video, _ = earlier
    bad = tmp_path / "pytorch_model.pt"
    bad.write_text("not weights\n")
    with pytest.raises(ConfigError, match=r"--scene-checkpoint: .*pytorch_model.pt: not a PyTorch checkpoint \(a text file"):
        plan("--input", video, "--output", str(tmp_path / "o"), "--scene-checkpoint", str(bad))
    assert not (tmp_path / "o").exists()


def test_a_resume_with_other_settings_names_only_what_differs(tmp_path, earlier):
    video, out = earlier
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    with pytest.raises(ConfigError) as refused:
        plan("--input", video, "--output", copy, "--shot-keyframes", "--skip-existing", "--transnetv2-threshold", "0.3")
    message = str(refused.value)
    assert "other settings (earlier → this run: shots.threshold: 0.5 → 0.3)" in message
    assert "scaler" not in message and "precision" not in message  # the keys that agree are left out


SHOTS = "transnetv2(rule=improved, threshold=0.5, scaler=AREA, precision=fp32, weights=wheel, min_shot_frames=1)"
DECODE = f"keyframes_only=False; frame columns: shots[{SHOTS}], motion_stats[on]"


@pytest.mark.parametrize("earlier_settings, now, said", [
    (SHOTS, SHOTS.replace("threshold=0.5", "threshold=0.3"), "threshold: 0.5 → 0.3"),
    (SHOTS, SHOTS.replace("0.5", "0.3").replace("fp32", "bf16"), "threshold: 0.5 → 0.3, precision: fp32 → bf16"),
    (DECODE, DECODE.replace("threshold=0.5", "threshold=0.3"), "shots.threshold: 0.5 → 0.3"),
    (DECODE, DECODE.replace(", motion_stats[on]", ""), "motion_stats: on → (none)"),
    (DECODE, DECODE.replace(SHOTS, "none"), f"shots: {SHOTS} → none"),  # another detector: its whole text
    (SHOTS, "lgss(min_shot_frames=15)", f"{SHOTS} → lgss(min_shot_frames=15)"),
    ("grouping(efficientnet-lite0,weight=0.5,window=3,threshold=0.4)",
     "grouping(efficientnet-lite0,weight=0.5,window=3,threshold=0.3-0.7,under_5_shots=0.5)",
     "threshold: 0.4 → 0.3-0.7, under_5_shots: (none) → 0.5"),
    ("max_side=480 quality=90", "max_side=480 quality=80", "quality: 90 → 80"),
    ("scorers=clip clipit=- queries=[a dog; a cat]", "scorers=clip clipit=- queries=[a dog]", "queries: [a dog; a cat] → [a dog]"),
    ("interval:1 size=grid16 dtype=float16", "fps:2 size=grid16 dtype=float16", "interval:1 → fps:2"),
    ("damo/model-a", "damo/model-b", "damo/model-a → damo/model-b"),
    ("x=1 y=2", "y=2 x=1", "x=1 y=2 → y=2 x=1"),  # the same keys in another order: both whole
    ("a(b", "a(c", "a(b → a(c"),  # unbalanced: both whole
])
def test_settings_diff_names_the_keys_that_differ(earlier_settings, now, said):
    assert settings_diff(earlier_settings, now) == said
