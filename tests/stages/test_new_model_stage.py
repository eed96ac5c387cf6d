"""#23's proof: an "OCR per keyframe" model stage is one module (this file stands in for it: a
ModelStage with a fake model) plus one registry line and its table's schema. It switches on the shot
keyframes it reads without any other stage knowing of it, reports a bad checkpoint in the one line
every model stage uses, and its run writes its table."""

import io
import os
from typing import ClassVar, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import synthetic
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from reelbeam import stages
from reelbeam.pipelines.cli import run
from reelbeam.pipelines.plan import build_plan
from reelbeam.schemas import tables
from reelbeam.stages.base import ConfigError, ModelStage, add_flag
from reelbeam.transforms.portable import infer

# --- the new module: reelbeam/stages/keyframe_text.py -------------------------------------------

KEYFRAME_TEXT = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("shot_idx", pa.int32()),
        pa.field("keyframe_idx", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("model", pa.string()),
    ],
    metadata={"reelbeam.table": "keyframe_text", "reelbeam.schema_version": tables.SCHEMA_VERSION,
              "doc": "text read in each shot keyframe (a test stage)"},
)


class FakeOCR(ModelHandler):
    """JPEG bytes -> 'text': the picture's mean grey level, as a word (stands in for a real model)."""

    def load_model(self):
        return lambda jpeg: f"grey{int(np.asarray(Image.open(io.BytesIO(jpeg)).convert('L')).mean())}"

    def run_inference(self, batch, model, inference_args=None):
        return [PredictionResult(x, model(x)) for x in batch]


def _text_row(kv, model_id):
    (video_id, shot_idx, keyframe_idx), result = kv
    return {"video_id": video_id, "shot_idx": shot_idx, "keyframe_idx": keyframe_idx, "text": result.inference,
            "model": model_id}


class KeyframeTextStage(ModelStage):
    name: ClassVar[str] = "keyframe_text"
    title: ClassVar[str] = "Text in shot keyframes (a test stage)"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("keyframe_text",)
    enabled_by: ClassVar[str] = "--ocr-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True
    checkpoint_flag: ClassVar[str | None] = "--ocr-checkpoint"
    model_kind: ClassVar[str | None] = "fake-ocr"

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "ocr-checkpoint", default=None, show_default=False, help="OCR weights")

    @classmethod
    def configure(cls, options, env) -> Optional["KeyframeTextStage"]:
        if not options.ocr_checkpoint:
            return None
        return cls(options.ocr_checkpoint, **cls.model_args(env)).hinted(env)

    def make_handler(self):
        return FakeOCR()

    def expand(self, tables):
        shots = tables["keyframes"] | "ShotKeyframes" >> beam.Filter(lambda r: r["kind"] == "shot")
        keyed = shots | "Key" >> beam.Map(lambda r: ((r["video_id"], r["shot_idx"], r["keyframe_idx"]), r["jpeg"]))
        read, _failed = infer(keyed, self.placed(self.handler()), "ReadText")
        return {
            "keyframe_text": read | "Rows" >> beam.Map(_text_row, self.model_id),
            "processed": shots | "Ids" >> beam.Map(lambda r: r["video_id"]) | "Distinct" >> beam.Distinct(),
        }


# --- the one registry line (and the table's schema) ---------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(stages, "REGISTRY", (*stages.REGISTRY, KeyframeTextStage))
    monkeypatch.setitem(tables.TABLES, "keyframe_text", KEYFRAME_TEXT)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "ocr.pt"
    path.write_bytes(b"\x80\x02fake weights")
    return str(path)


def test_the_stage_turns_on_the_keyframes_it_reads_and_writes_its_table(tmp_path, registered, weights):
    video = synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30))
    out = str(tmp_path / "out")
    plan = run(["--input", video, "--output", out, "--ocr-checkpoint", weights, "--scenes", "none", "--no-json"])
    assert "shot_keyframes" in plan.stage_names  # no --shot-keyframes: its reader asked for it
    assert plan.stage_names[-1] == "keyframe_text"
    assert plan.stage("keyframe_text").checkpoints() == {"--ocr-checkpoint": weights}
    rows = pq.read_table(os.path.join(out, "keyframe_text")).to_pylist()
    assert sorted((r["shot_idx"], r["keyframe_idx"]) for r in rows) == [(s, k) for s in (0, 1) for k in (0, 1, 2)]
    assert all(r["text"].startswith("grey") and r["model"].startswith("fake-ocr:ocr.pt@") for r in rows)


def test_a_missing_checkpoint_is_one_line_naming_the_flag(tmp_path, registered):
    with pytest.raises(ConfigError) as e:
        build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o"),
                                    "--ocr-checkpoint", str(tmp_path / "missing.pt")]))
    assert str(e.value).startswith("--ocr-checkpoint: ") and "\n" not in str(e.value)


def test_keyframes_only_decoding_cannot_feed_it(tmp_path, registered, weights):
    with pytest.raises(ConfigError, match="--ocr-checkpoint needs every frame decoded: drop --iframes-only"):
        build_plan(PipelineOptions(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "o"),
                                    "--ocr-checkpoint", weights, "--iframes-only"]))
