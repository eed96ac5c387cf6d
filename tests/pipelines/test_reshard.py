"""Tables as the interface between stages: a run split into two jobs at any reshard point writes the
same rows as one run, and --skip-existing after a run that stopped between stages does only the
missing stages."""

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
from reelbeam.schemas.tables import TABLES
from reelbeam.store.tables import active_files, part_name

# Columns that say when or how long, not what: they differ between any two runs.
RUN_COLUMNS = {"decode_seconds", "time"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("bassl") / "pytorch_model.pt"
    save_modelscope_layout(BaSSL().eval(), str(path))
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("reshard")
    synthetic.make_shot_video(str(root / "a.mp4"), (40, 30, 50))
    synthetic.make_shot_video(str(root / "b.mp4"), (30, 45), seed=4)
    return str(root)


def flags(corpus, out, checkpoint):
    return ["--input", corpus, "--output", out, "--scene-checkpoint", checkpoint, "--motion-maps", "every:20", "--iframes"]


def snapshot(out) -> dict:
    """Every table's rows (run columns and the ledger left out) and the JSON documents."""
    return snapshots.snapshot(out, skip_columns=RUN_COLUMNS, skip_tables=("stage_runs",))


@pytest.fixture(scope="module")
def full_run(corpus, checkpoint, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full") / "out")
    run(flags(corpus, out, checkpoint))
    return snapshot(out)


@pytest.mark.parametrize(
    "first_stages, start_from",
    [
        ("decode", "shots"),  # after the decode pass: CPU job, then everything else
        ("decode,shot_keyframes", "keyframes"),  # CPU workers, then the GPU stages
        ("decode,shot_keyframes,bassl_encoder", "shot_embeddings"),  # then the CRN and scenes only
    ],
)
def test_a_run_split_at_a_reshard_point_writes_the_same_rows(corpus, checkpoint, full_run, tmp_path, first_stages, start_from):
    out = str(tmp_path / "out")
    first = run(flags(corpus, out, checkpoint) + ["--stages", first_stages])
    assert [s.name for s in first.stages if not s.in_decode_pass] == first_stages.split(",")
    second = run(["--output", out, "--scene-checkpoint", checkpoint, "--start-from", start_from])
    assert "decode" not in second.stage_names
    snapshots.assert_same_output(snapshot(out), full_run)


def test_skip_existing_after_a_run_that_stopped_between_stages_does_only_the_rest(corpus, checkpoint, full_run, tmp_path):
    out = str(tmp_path / "out")
    # A run that got as far as the shot keyframes ...
    first = run(flags(corpus, out, checkpoint) + ["--stages", "decode,shot_keyframes"])
    # ... and had written an embeddings file when it was killed (never committed).
    part = active_files(out, "keyframes")[0].path
    stray = os.path.join(out, "shot_embeddings", part_name(first.run_id, "bassl_encoder"))
    os.makedirs(os.path.dirname(stray))
    shutil.copy(part, stray)
    with pytest.raises(ConfigError, match="--skip-existing"):
        run(flags(corpus, out, checkpoint))
    resumed = run(flags(corpus, out, checkpoint) + ["--skip-existing"])
    assert stray not in [f.path for f in active_files(out, "shot_embeddings")]
    done_again = {f.stage for t in TABLES for f in active_files(out, t) if f.run_id == resumed.run_id and t != "failures"}
    assert done_again == {"bassl_encoder", "boundaries", "model_scenes", "modelscope_json"}
    snapshots.assert_same_output(snapshot(out), full_run)
    # Nothing left to do: a third run commits no rows.
    third = run(flags(corpus, out, checkpoint) + ["--skip-existing"])
    written = rows_written(out, third.run_id)
    assert not any(n for t, n in written.items() if t not in ("failures", "stage_runs")), written
    snapshots.assert_same_output(snapshot(out), full_run)
