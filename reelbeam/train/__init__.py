"""Training on features reelbeam has already extracted: `reelbeam train scenes|summaries`.

The extraction (decode, shot encoder, CLIP) runs once, on GPU workers if need be; its tables
(`shot_embeddings`, `shots`, `frame_embeddings`) are then the training set, read through the
store's committed-only reader (`reelbeam.api.dataset`) in batches, never whole.

- `data`: tables of one or more outputs -> features on local disk (a memory map) and per-video
  shot / frame indexes; names of labelled videos -> videos of the outputs.
- `labels`: scene labels (MovieNet `label318`, BaSSL anno ndjson, ModelScope toydata JSON, and the
  scene truth formats of `reelbeam evaluate`) and summary annotations (h5, CSV).
- `split`: train / validation split by video (a split file, or a seeded fraction).
- `scenes`: BaSSL's fine-tuning recipe (reference/scene_seg.md section 8): CRN + boundary head.
- `summaries`: CLIP-It's scoring transformer on `gtscore` with ModelScope's MSE.
- `cli`: the `reelbeam train` command.

Spec: docs/training.md.
"""

from __future__ import annotations


class TrainError(ValueError):
    """Bad input to `reelbeam train` (labels that do not match the shots, a missing table, a bad
    split); the message is one line, printed as `reelbeam train: error: ...`."""
