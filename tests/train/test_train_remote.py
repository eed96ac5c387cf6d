"""`reelbeam train` with its features and its output on a bucket (s3:// and gs:// emulators,
tests/remote_storage.py): the tables are read through delta-rs and fsspec, the checkpoint,
metrics.json and last.pt written there, and --resume reads them back."""

import dataclasses
import json

import numpy as np
import pytest
from outputs import write_table

from reelbeam.models.clipit import ClipItConfig, load_clipit
from reelbeam.train.summaries import SummaryTrainConfig, train_summaries

SMALL = ClipItConfig(d_inner=32, n_layers=1, n_head=2, d_k=8, d_v=8, txt_heads=2, n_position=32)


@pytest.mark.parametrize("backend", ["s3_emulator", "gcs_emulator"])
def test_train_summaries_on_a_bucket(request, backend, tmp_path):
    emulator = request.getfixturevalue(backend)
    out, run = emulator.url(f"{backend}-train/tables"), emulator.url(f"{backend}-train/run1")
    rng = np.random.default_rng(0)
    csv = ["video,frame,score"]
    with emulator.environ():
        write_table(out, "videos", [{"video_id": f"{v:016x}", "uri": f"/d/v{v}.mp4", "status": "ok"} for v in range(3)])
        rows = []
        for v in range(3):
            for f in range(0, 60, 15):
                rows.append({"video_id": f"{v:016x}", "frame_idx": f, "model": "m",
                             "embedding": rng.standard_normal(512).tolist()})
                csv.append(f"v{v},{f},{rng.random():.3f}")
        write_table(out, "frame_embeddings", rows)
        (tmp_path / "imp.csv").write_text("\n".join(csv) + "\n")
        cfg = SummaryTrainConfig(outputs=(out,), annotations=str(tmp_path / "imp.csv"), out=run, epochs=1, val_fraction=0.34)
        first = train_summaries(cfg, progress=False, config=SMALL)
        again = train_summaries(dataclasses.replace(cfg, epochs=1, resume=True), progress=False, config=SMALL)
        fs = emulator.fs()
        with fs.open(emulator.url(f"{backend}-train/run1/metrics.json"), "r") as f:
            metrics = json.load(f)
        model = load_clipit(run + "/pytorch_model.pt", config=SMALL)
    assert first["best_epoch"] == 1 and again["epochs"] == first["epochs"]  # nothing left to resume
    assert metrics["epochs"][0]["val"]["fscore"] is None and metrics["best"]["mse"] >= 0  # CSV: MSE decides
    assert model.config == SMALL
