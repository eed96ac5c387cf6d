"""Training data from reelbeam outputs, read in batches through the store's committed-only reader.

- `match_videos`: names in a label file -> videos of one or more outputs (local, `gs://`, `s3://`),
  by video_id, URI, file name or file name without extension, as `reelbeam evaluate` matches them.
- `read_shot_frames`: the `shots` rows of those videos -> per video its [n, 2] inclusive frame spans
  (shot i in row i).
- `EmbeddingCache`: an embedding table (`shot_embeddings`, `frame_embeddings`) of those videos,
  streamed with `pyarrow.dataset` scanners (`reelbeam.api.dataset`: committed files only, so rows
  of a run that is still writing, or that a re-run replaced, are never read) in record batches into
  one float32 (or float16) matrix memory-mapped from a local file, plus per video the rows of its
  embeddings in order (`shot_idx`, `frame_idx`). Only the index (a few bytes a row) lives in RAM;
  the matrix is paged in by the OS as training touches it: 8.2 GB per million 2048-d shot
  embeddings in float32 (4.1 GB in float16), 2.0 GB per million 512-d CLIP frames.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from reelbeam.train import TrainError

BATCH_ROWS = 8192  # rows per record batch read (2048-d float32: 64 MB)


@dataclasses.dataclass(frozen=True)
class VideoRef:
    """A labelled video found in an output: its truth name, the output, video_id and URI."""

    name: str
    output: str
    video_id: str
    uri: str


def _aliases(video_id: str, uri: str) -> set[str]:
    base = posixpath.basename(uri.rstrip("/").replace("\\", "/"))
    return {video_id, uri, base, base.rsplit(".", 1)[0]}


def _dataset(output: str, table: str) -> ds.Dataset:
    from reelbeam.api import TableNotFound, dataset

    try:
        return dataset(output, table)
    except TableNotFound as e:
        raise TrainError(f"{output}: no `{table}` table ({e}); run the stage that writes it first") from None


def match_videos(outputs: Sequence[str], names: Sequence[str], skip_unmatched: bool = False) -> dict[str, VideoRef]:
    """{truth name: VideoRef} (module doc). A name matching two videos is an error; so is a name
    matching none, unless `skip_unmatched` (then it is left out; at least one must match)."""
    found: dict[str, list[VideoRef]] = {}
    for out in outputs:
        videos = _dataset(out, "videos").to_table(columns=["video_id", "uri"]).to_pylist()
        for v in videos:
            for alias in _aliases(v["video_id"], v["uri"]):
                found.setdefault(alias, []).append(VideoRef("", out, v["video_id"], v["uri"]))
    matched, missing = {}, []
    for name in names:
        refs = found.get(name) or found.get(posixpath.basename(name)) or found.get(posixpath.basename(name).rsplit(".", 1)[0])
        if not refs:
            missing.append(name)
            continue
        distinct = {(r.output, r.video_id) for r in refs}
        if len(distinct) > 1:
            raise TrainError(f"labelled video {name!r} matches several videos: {sorted(r.output + ':' + r.uri for r in refs)}")
        matched[name] = dataclasses.replace(refs[0], name=name)
    if missing and (not skip_unmatched or not matched):
        raise TrainError(
            f"{len(missing)} of {len(names)} labelled videos are not in {', '.join(outputs)}: first {missing[0]!r} "
            f"(matched by video_id, URI, file name or file name without extension)"
            + ("; --skip-unmatched trains on the others" if matched else "")
        )
    return matched


def _by_output(refs: Mapping[str, VideoRef]) -> dict[str, dict[str, str]]:
    """output -> {video_id: truth name}."""
    out: dict[str, dict[str, str]] = {}
    for name, r in refs.items():
        out.setdefault(r.output, {})[r.video_id] = name
    return out


def read_shot_frames(refs: Mapping[str, VideoRef]) -> dict[str, np.ndarray]:
    """{truth name: [n, 2] int64 (start_frame, end_frame) of shot i in row i} from `shots`."""
    frames: dict[str, np.ndarray] = {}
    for out, ids in _by_output(refs).items():
        t = _dataset(out, "shots").to_table(
            columns=["video_id", "shot_idx", "start_frame", "end_frame"], filter=ds.field("video_id").isin(sorted(ids))
        )
        t = t.sort_by([("video_id", "ascending"), ("shot_idx", "ascending")])
        vids = t.column("video_id").to_numpy(zero_copy_only=False).astype(str)
        idx = t.column("shot_idx").to_numpy()
        spans = np.stack([t.column("start_frame").to_numpy(), t.column("end_frame").to_numpy()], 1).astype(np.int64)
        for vid in ids:
            sel = vids == vid
            got = idx[sel]
            if len(got) and not np.array_equal(got, np.arange(len(got))):
                first = int(np.flatnonzero(got != np.arange(len(got)))[0])
                raise TrainError(f"{out}: the shots of {refs[ids[vid]].uri} are not numbered 0..{len(got) - 1}: shot {first} is missing")
            frames[ids[vid]] = spans[sel]
    return frames


def choose_model(refs: Mapping[str, VideoRef], table: str, wanted: str | None, flag: str) -> str | None:
    """The `model` value of `table` to train on: `wanted`, or the only one the labelled videos have
    (reads the `model` column alone); TrainError listing them when there are several."""
    values: set[str] = set()
    for out, ids in _by_output(refs).items():
        t = _dataset(out, table).to_table(columns=["model"], filter=ds.field("video_id").isin(sorted(ids)))
        values |= {v for v in pc.unique(t.column("model")).to_pylist() if v is not None}
    if wanted is not None:
        if wanted not in values:
            raise TrainError(f"no `{table}` rows of model {wanted!r} for the labelled videos; the table has {sorted(values)}")
        return wanted
    if len(values) > 1:
        raise TrainError(f"`{table}` holds several models {sorted(values)} for the labelled videos; choose one with {flag}")
    return next(iter(values), None)


class EmbeddingCache:
    """Embeddings of the labelled videos in one memory-mapped matrix (module doc).

    features: [rows, dim] float32/float16 memmap. rows[name]: int64 row numbers of the video's
    embeddings, sorted by `keys[name]` (shot_idx or frame_idx)."""

    def __init__(self, refs: Mapping[str, VideoRef], table: str, key: str, dim: int, model: str | None,
                 cache_dir: str | None = None, dtype: str = "float32", extra: Sequence[str] = ()) -> None:
        self._tmp = None
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="reelbeam-train-")
            cache_dir = self._tmp.name
        os.makedirs(cache_dir, exist_ok=True)
        self.path = os.path.join(cache_dir, f"{table}.{dtype}.bin")
        self.dim = dim
        names, keys, vid_codes, extras = [], [], [], {c: [] for c in extra}
        total = 0
        with open(self.path, "wb") as f:
            for out, ids in _by_output(refs).items():
                order = sorted(ids)
                filt = ds.field("video_id").isin(order)
                if model is not None:
                    filt &= ds.field("model") == model
                # Readahead of one file and two batches: memory stays a few batches whatever the table's size.
                scanner = _dataset(out, table).scanner(columns=["video_id", key, "embedding", *extra], filter=filt,
                                                       batch_size=BATCH_ROWS, batch_readahead=2, fragment_readahead=1)
                for batch in scanner.to_batches():
                    if batch.num_rows == 0:
                        continue
                    emb = batch.column("embedding")
                    if emb.null_count:
                        raise TrainError(f"{out}: `{table}` has rows without an embedding")
                    values = emb.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, dim)
                    f.write(memoryview(np.ascontiguousarray(values, dtype=dtype)))
                    codes = pc.index_in(batch.column("video_id"), value_set=pa.array(order)).to_numpy(zero_copy_only=False)
                    vid_codes.append(np.asarray(codes, np.int64) + len(names))
                    keys.append(batch.column(key).to_numpy(zero_copy_only=False).astype(np.int64))
                    for c in extra:
                        extras[c].append(batch.column(c).to_numpy(zero_copy_only=False))
                    total += batch.num_rows
                names += [ids[v] for v in order]
        self.features = np.memmap(self.path, dtype=dtype, mode="r", shape=(total, dim)) if total else np.zeros((0, dim), dtype)
        codes = np.concatenate(vid_codes) if vid_codes else np.zeros(0, np.int64)
        key_all = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.extra = {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in extras.items()}
        order = np.lexsort((key_all, codes))
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        self.rows = {n: order[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}
        self.keys = {n: key_all[r] for n, r in self.rows.items()}
        self.num_rows = total

    def close(self) -> None:
        mm = getattr(self.features, "_mmap", None)
        if mm is not None:
            mm.close()
        self.features = None
        if self._tmp is not None:
            self._tmp.cleanup()
