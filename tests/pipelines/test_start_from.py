"""Every `--start-from` table x scene method x (the same output | `--from` another one): the second job
gives the tables of one full run with the same flags, or is refused in one line before it starts;
and "nothing new" is said only when nothing was written.

The first job of each cell runs the stages up to the start table (`--stages`); the second starts
from that table. Cells share the first jobs (one per method and table) and the full runs (one per
method)."""

import os
import shutil

import pytest
import snapshots
import synthetic
import torch

from reelbeam.models.bassl import BaSSL, save_modelscope_layout
from reelbeam.pipelines.cli import run
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.outputs import rows_written

BASE = ["--shot-detector", "lgss", "--direct_running_mode=in_memory"]
METHODS = {
    "grouping": [],
    "histogram": ["--scenes", "histogram"],
    "bassl": ["--scene-checkpoint", "{ckpt}"],
}
# The stages a first job runs to leave each start table behind, per method (None: these flags
# cannot start from the table, and the second job must say so).
FIRST = {
    "grouping": {"shots": "decode", "keyframes": None, "shot_embeddings": None, "scenes": "decode,grouping_scenes"},
    "histogram": {"shots": "decode", "keyframes": None, "shot_embeddings": None, "scenes": "decode"},
    "bassl": {"shots": "decode", "keyframes": "decode,shot_keyframes", "shot_embeddings": "decode,shot_keyframes,bassl_encoder",
              "scenes": "decode,shot_keyframes,bassl_encoder,boundaries,model_scenes"},
}
REFUSALS = {
    ("grouping", "keyframes"): "no enabled stage reads it",
    ("grouping", "shot_embeddings"): "no enabled stage reads it",
    ("histogram", "keyframes"): "no enabled stage reads it",
    ("histogram", "shot_embeddings"): "no enabled stage reads it",
}
SKIP = {"decode_seconds", "time", "run_id"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("start_from")
    corpus = root / "corpus"
    synthetic.make_shot_video(str(corpus / "a.mp4"), (40, 30, 50), width=96, height=64)
    synthetic.make_shot_video(str(corpus / "b.mp4"), (30, 45), width=96, height=64, seed=4)
    torch.manual_seed(3)
    ckpt = root / "pytorch_model.pt"
    save_modelscope_layout(BaSSL().eval(), str(ckpt))
    return {"root": root, "corpus": str(corpus), "ckpt": str(ckpt), "full": {}, "first": {}}


def flags(setup, method):
    return [a.format(ckpt=setup["ckpt"]) for a in METHODS[method]] + BASE


def full_run(setup, method):
    if method not in setup["full"]:
        out = str(setup["root"] / f"full-{method}")
        run(["--input", setup["corpus"], "--output", out, *flags(setup, method)])
        setup["full"][method] = snapshots.snapshot(out, skip_columns=SKIP, skip_tables=("stage_runs", "failures"))
    return setup["full"][method]


def first_job(setup, method, table):
    key = (method, table)
    if key not in setup["first"]:
        out = str(setup["root"] / f"first-{method}-{table}")
        run(["--input", setup["corpus"], "--output", out, *flags(setup, method), "--stages", FIRST[method][table]])
        setup["first"][key] = out
    return setup["first"][key]


@pytest.mark.parametrize("target", ["same output", "from another output"])
@pytest.mark.parametrize("table", ["shots", "keyframes", "shot_embeddings", "scenes"])
@pytest.mark.parametrize("method", list(METHODS))
def test_start_from_gives_the_tables_of_a_full_run_or_a_one_line_refusal(setup, tmp_path, method, table, target):
    refusal = REFUSALS.get((method, table))
    if refusal:
        earlier = first_job(setup, method, "scenes")
        with pytest.raises(ConfigError, match=refusal):
            run(["--output", str(tmp_path / "o"), "--from", earlier, "--start-from", table, *flags(setup, method)])
        assert not (tmp_path / "o" / "videos").exists()
        return
    want = full_run(setup, method)
    earlier = first_job(setup, method, table)
    if target == "same output":
        out = str(tmp_path / "out")
        shutil.copytree(earlier, out)
        second = run(["--output", out, "--start-from", table, *flags(setup, method)])
        got = snapshots.snapshot(out, skip_columns=SKIP, skip_tables=("stage_runs", "failures"))
        snapshots.assert_same_output(got, want)
    else:
        out = str(tmp_path / "new")
        second = run(["--output", out, "--from", earlier, "--start-from", table, *flags(setup, method)])
        got = snapshots.snapshot(out, skip_columns=SKIP, skip_tables=("stage_runs", "failures"))
        # The new output holds what the second job made, equal to the full run's tables of them.
        made = {t for s in second.stages for t in s.writes} & set(want["tables"])
        assert set(got["tables"]) == made, (sorted(got["tables"]), sorted(made))
        snapshots.assert_same_output({"tables": got["tables"], "json": got["json"]},
                                     {"tables": {t: want["tables"][t] for t in made}, "json": want["json"]})
    written = rows_written(out, second.run_id)
    assert any(n for t, n in written.items() if t not in ("failures", "stage_runs")) or got["json"]
    assert "decode" not in second.stage_names and os.path.isdir(out)


def test_tables_of_another_scene_method_or_none_are_refused_not_copied(setup, tmp_path):
    """The reported case: `--from OLD --start-from shots --scenes histogram` over grouping scenes ran
    only the JSON and copied OLD's grouping scenes into it, writing no histogram scenes."""
    grouping = first_job(setup, "grouping", "scenes")
    with pytest.raises(ConfigError, match="holds `scenes` made by stage grouping_scenes, and these flags make it with "
                                          "stage histogram_scenes"):
        run(["--output", str(tmp_path / "new"), "--from", grouping, "--start-from", "shots", *flags(setup, "histogram")])
    none = str(tmp_path / "none")
    run(["--input", setup["corpus"], "--output", none, *BASE, "--scenes", "none"])
    with pytest.raises(ConfigError, match="make `scenes` with stage histogram_scenes, which runs inside the decode pass"):
        run(["--output", str(tmp_path / "new2"), "--from", none, "--start-from", "shots", *flags(setup, "histogram")])
    assert not (tmp_path / "new").exists() and not (tmp_path / "new2" / "videos").exists()
