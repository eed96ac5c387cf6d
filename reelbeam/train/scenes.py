"""`reelbeam train scenes`: BaSSL's fine-tuning stage on shot embeddings reelbeam has written.

Recipe (reference/scene_seg.md section 8, kakaobrain/bassl `finetune/`):

- Input: the frozen shot encoder's 2048-d features (`shot_embeddings`; the encoder is never run
  here), one training sample per labelled shot of the training videos: the window of 17 shots
  centred on it (`window_indices`: i-8..i+8 clipped to the video, edge shots repeat, as at
  inference; BaSSL's training clips to [0, num_shot], the same where num_shot is the last index).
- Model: the CRN and `head_sbd` (Linear 768 -> 2), in train mode (dropout 0.1), initialised from
  the checkpoint's CRN (and its head, where it has one; a pre-training .ckpt has none and gets a
  fresh head), or from scratch (`--from-scratch`, or a checkpoint without a CRN).
- Loss: cross-entropy of the centre shot's label with per-batch class balancing,
  w = 0.5 [y=1] / (#pos + 1e-5) + 0.5 [y=0] / (#neg + 1e-5), loss = sum w CE.
- Adam (default betas, weight decay 0), lr = base_lr x batch / 256 with base_lr 2.5e-6 for a
  pre-trained CRN (1.0e-5 at batch 1024) and 2.5e-5 from scratch (1.0e-4), cosine decay to 0 per
  iteration with no warmup, batch 1024 with drop_last (one smaller batch where there are fewer
  samples than one batch), shuffled, 20 epochs, fp32.
- Every epoch: the validation videos' shots are scored (eval mode, windows as at inference) and
  BaSSL's metrics computed with `reelbeam.metrics.movienet` (pooled AP, F1 at 0.5, recall,
  Recall@3s at BaSSL's hard-coded 24 fps, mIoU). BaSSL itself keeps its last epoch; here the epoch
  with the best validation F1 is kept (SCRL's protocol; the first such epoch on ties).

Writes to `--out`: `pytorch_model.pt`, the best epoch in ModelScope's flat layout (`shot_encoder.*`
from the given checkpoint, the trained `crn.*` and `head_sbd.*`, and the buffers the published
file carries), which `reelbeam run --scene-checkpoint` loads unchanged; `metrics.json` (settings,
per-epoch loss, learning rate and validation metrics, best epoch, the split); `last.pt` (the CRN,
head, optimiser and schedule after the latest epoch) for `--resume`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reelbeam.train import TrainError, loop
from reelbeam.train.data import EmbeddingCache, choose_model, match_videos, read_shot_frames
from reelbeam.train.labels import check_against_shots, read_scene_labels
from reelbeam.train.split import split_videos

BASE_LR_PRETRAINED = 2.5e-6  # BaSSL checkpoints (CRN pre-trained)
BASE_LR_SCRATCH = 2.5e-5  # shot-level baselines (CRN from scratch)
LR_BATCH = 256  # lr = base_lr x batch / 256 (BaSSL's auto_scale)
EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class SceneTrainConfig:
    """Settings of one training run (all recorded in metrics.json)."""

    outputs: tuple[str, ...]
    labels: str
    checkpoint: str
    out: str
    labels_format: str | None = None
    annotator: int = 0
    from_scratch: bool = False
    epochs: int = 20
    batch_size: int = 1024
    base_lr: float | None = None  # None: BaSSL's for the case (pre-trained CRN or scratch)
    seed: int = 0
    split: str | None = None
    val_key: str = "val"
    split_index: int = 0
    val_fraction: float = 0.2
    encoder_model: str | None = None
    skip_unmatched: bool = False
    device: str = "auto"
    feature_dtype: str = "float32"
    cache_dir: str | None = None
    eval_batch: int = 256
    loader_threads: int | None = None  # None: 0 on CPU (the model uses the cores), else up to 4
    resume: bool = False


# Settings that may differ between a run and its --resume (they do not change what is computed).
_RESUME_FREE = ("resume", "cache_dir", "device", "eval_batch", "loader_threads")


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BaSSL's per-batch class-balanced CE: positives and negatives each weigh half."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    pos = (labels == 1).float()
    neg = 1.0 - pos
    w = 0.5 * pos / (pos.sum() + EPS) + 0.5 * neg / (neg.sum() + EPS)
    return (w * ce).sum()


def _check_encoder(model: str | None, checkpoint: str) -> None:
    """The embeddings' `model` (`bassl-resnet50:<file>@<sha8>`) must be the checkpoint's encoder:
    the trained CRN is saved beside that encoder, and a CRN trained on another encoder's features
    would score nonsense."""
    from reelbeam.models.checkpoints import CheckpointError, sha256

    if model is None or "@" not in model:
        return
    try:
        digest = sha256(checkpoint)[:8]
    except CheckpointError as e:
        raise TrainError(str(e)) from None
    if model.rsplit("@", 1)[1] != digest:
        raise TrainError(
            f"the shot embeddings were made by {model}, not by {checkpoint} (sha256 {digest}...): give --checkpoint "
            "the checkpoint whose encoder made them (its encoder is saved with the trained CRN)"
        )


class _Windows:
    """Windows of 17 shots from the cache: videos' rows concatenated, offsets per video."""

    def __init__(self, cache: EmbeddingCache, names: list[str], neighbors: int) -> None:
        self.features = cache.features
        self.flat = np.concatenate([cache.rows[n] for n in names]) if names else np.zeros(0, np.int64)
        lengths = np.array([len(cache.rows[n]) for n in names], np.int64)
        self.offset = np.r_[0, np.cumsum(lengths)[:-1]] if len(names) else np.zeros(0, np.int64)
        self.length = lengths
        self.rel = np.arange(-neighbors, neighbors + 1)

    def gather(self, video: np.ndarray, shot: np.ndarray) -> torch.Tensor:
        """[B] video numbers, [B] centre shots -> [B, 17, 2048] float32."""
        idx = np.clip(shot[:, None] + self.rel[None, :], 0, (self.length[video] - 1)[:, None])
        rows = self.flat[self.offset[video][:, None] + idx]
        x = np.asarray(self.features[rows.ravel()], np.float32)
        return torch.from_numpy(x.reshape(len(video), len(self.rel), -1))


def prefetch(make, items, threads: int):
    """`make(item)` for each of `items`, in order, computed up to 2 x `threads` ahead in a thread
    pool (the window gathers are numpy copies that release the GIL while the model trains on the
    previous batch); `threads` 0: in this thread."""
    if threads <= 0:
        yield from map(make, items)
        return
    import collections
    from concurrent.futures import ThreadPoolExecutor

    items = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="reelbeam-windows") as pool:
        pending = collections.deque(pool.submit(make, item) for _, item in zip(range(2 * threads), items))
        while pending:
            out = pending.popleft().result()
            nxt = next(items, None)
            if nxt is not None:
                pending.append(pool.submit(make, nxt))
            yield out


class _Heads(nn.Module):
    """The trained part: `crn` and `head_sbd`, named as in the published file."""

    def __init__(self, crn: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.crn = crn
        self.head_sbd = head

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head_sbd(self.crn(windows))


class _Layout:
    """What `save_modelscope_layout` reads of a model: the full BaSSL state_dict."""

    def __init__(self, encoder_state: dict, heads: _Heads) -> None:
        self._encoder, self._heads = encoder_state, heads

    def state_dict(self) -> dict:
        state = {f"shot_encoder.{k}": v for k, v in self._encoder.items()}
        state.update({k: v.detach().cpu().clone() for k, v in self._heads.state_dict().items()})
        return state


def _save_checkpoint(path: str, encoder_state: dict, heads: _Heads) -> None:
    """ModelScope's flat pytorch_model.pt (`save_modelscope_layout`, the buffers included)."""
    import io

    from reelbeam.models.bassl import save_modelscope_layout

    buf = io.BytesIO()
    save_modelscope_layout(_Layout(encoder_state, heads), buf)
    loop.write_bytes(buf.getvalue(), path)


@torch.no_grad()
def score_videos(heads: _Heads, windows: _Windows, count: int, device: str, batch: int) -> list[np.ndarray]:
    """p(boundary) of every shot of the first `count` videos of `windows`, in eval mode."""
    heads.eval()
    out = []
    for v in range(count):
        shots = np.arange(windows.length[v])
        probs = []
        for i in range(0, len(shots), batch):
            s = shots[i:i + batch]
            x = windows.gather(np.full(len(s), v), s).to(device)
            probs.append(torch.softmax(heads(x).float(), -1)[:, 1].cpu().numpy())
        out.append(np.concatenate(probs) if probs else np.zeros(0))
    return out


def _settings(cfg: SceneTrainConfig, from_scratch: bool, lr: float, base_lr: float) -> dict:
    s = dataclasses.asdict(cfg)
    s["outputs"] = list(cfg.outputs)
    s.update(from_scratch=from_scratch, base_lr=base_lr, lr=lr, neighbors=8, window=17, optimizer="Adam(betas=(0.9, 0.999), weight_decay=0)",
             schedule="cosine to 0 per iteration, no warmup", loss="per-batch class-balanced cross-entropy",
             selection="best validation F1 (p >= 0.5, pooled)")
    return s


@loop.keeps_torch_flags
def train_scenes(cfg: SceneTrainConfig, progress: bool = True, on_epoch: Callable[[int], None] | None = None) -> dict:
    """Train (module doc); returns the contents of metrics.json. Raises TrainError on bad input."""
    from reelbeam.metrics.movienet import MovieTruth, movienet_metrics
    from reelbeam.models.bassl import CRN, HIDDEN, NEIGHBORS, load_bassl
    from reelbeam.models.checkpoints import CheckpointError
    from reelbeam.models.device import resolve_device

    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise TrainError(f"--epochs and --batch-size must be at least 1, got {cfg.epochs} and {cfg.batch_size}")
    if cfg.resume and not loop.exists(loop.join(cfg.out, loop.LAST)):  # before hours of caching
        raise TrainError(f"--resume: {loop.join(cfg.out, loop.LAST)} does not exist (nothing to resume; run without --resume)")
    labels = read_scene_labels(cfg.labels, cfg.labels_format, cfg.annotator)
    if not labels:
        raise TrainError(f"{cfg.labels}: no labelled videos")
    refs = match_videos(cfg.outputs, sorted(labels), cfg.skip_unmatched)
    frames = read_shot_frames(refs)
    truth: dict[str, MovieTruth] = {}
    for name, ref in refs.items():
        truth[name] = MovieTruth(check_against_shots(name, ref.uri, labels[name], frames.get(name, np.zeros((0, 2), np.int64))),
                                 frames[name])
    train_names, val_names = split_videos(list(refs), cfg.split, cfg.val_fraction, cfg.seed, cfg.val_key, cfg.split_index)
    try:
        loaded = load_bassl(cfg.checkpoint)
    except CheckpointError as e:
        raise TrainError(str(e)) from None
    model = choose_model(refs, "shot_embeddings", cfg.encoder_model, "--encoder-model")
    _check_encoder(model, cfg.checkpoint)

    source_state = loaded.model.state_dict()
    has_crn = any(k.startswith("crn.") for k in load_state_keys(cfg.checkpoint))
    from_scratch = cfg.from_scratch or not has_crn
    base_lr = cfg.base_lr if cfg.base_lr is not None else (BASE_LR_SCRATCH if from_scratch else BASE_LR_PRETRAINED)
    lr = base_lr * cfg.batch_size / LR_BATCH
    settings = _settings(cfg, from_scratch, lr, base_lr)

    device = resolve_device(cfg.device)
    loop.deterministic(device)
    threads = cfg.loader_threads
    if threads is None:
        import os

        threads = 0 if device == "cpu" else min(4, max(1, (os.cpu_count() or 2) - 2))
    settings["loader_threads"] = threads
    torch.manual_seed(cfg.seed)
    crn, head = CRN(), nn.Linear(HIDDEN, 2)
    if not from_scratch:
        crn.load_state_dict({k[4:]: v for k, v in source_state.items() if k.startswith("crn.")})
        if loaded.has_head:
            head.load_state_dict({k[9:]: v for k, v in source_state.items() if k.startswith("head_sbd.")})
    heads = _Heads(crn, head).to(device)
    encoder_state = {k[len("shot_encoder."):]: v for k, v in source_state.items() if k.startswith("shot_encoder.")}
    del loaded, source_state

    cache = EmbeddingCache(refs, "shot_embeddings", "shot_idx", 2048, model, cfg.cache_dir, cfg.feature_dtype)
    try:
        for name in refs:
            got, n = cache.keys[name], len(frames[name])
            if not np.array_equal(got, np.arange(n)):
                missing = sorted(set(range(n)) - set(got.tolist()))
                what = f"first missing shot {missing[0]}" if missing else f"first unexpected shot_idx {sorted(set(got.tolist()) - set(range(n)))[:1] or got[:1].tolist()}"
                raise TrainError(f"the shot_embeddings of {refs[name].uri} do not match its shots: {len(got)} embeddings for {n} shots; {what}")
        windows = _Windows(cache, val_names + train_names, NEIGHBORS)
        vnum = {n: i for i, n in enumerate(val_names + train_names)}
        s_video = np.concatenate([np.full(len(truth[n].labels), vnum[n]) for n in train_names]).astype(np.int64)
        s_shot = np.concatenate([np.array(sorted(truth[n].labels), np.int64) for n in train_names])
        s_label = np.concatenate([np.array([truth[n].labels[s] for s in sorted(truth[n].labels)], np.int64) for n in train_names])
        if len(s_label) == 0:
            raise TrainError("the training videos have no labelled shots")
        n = len(s_label)
        per_epoch = n // cfg.batch_size if n >= cfg.batch_size else 1
        batch = min(cfg.batch_size, n)
        total = per_epoch * cfg.epochs

        optimizer = torch.optim.Adam(heads.parameters(), lr=lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: loop.cosine_factor(step, total))
        result = {"settings": settings, "split": {"train": train_names, "val": val_names},
                  "samples": {"train_shots": int(n), "train_positives": int(s_label.sum()), "iterations_per_epoch": per_epoch},
                  "epochs": [], "best_epoch": None, "best": None, "checkpoint": loop.join(cfg.out, loop.CHECKPOINT)}
        start = 1
        loop.makedirs(cfg.out)
        last_path = loop.join(cfg.out, loop.LAST)
        if cfg.resume:
            start, result = _resume(cfg, last_path, settings, heads, optimizer, schedule, result)
        bar = loop.Bar(cfg.epochs, enabled=progress)
        for epoch in range(start, cfg.epochs + 1):
            started = time.perf_counter()
            loop.seed_epoch(cfg.seed, epoch)
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            heads.train()
            losses = []
            batches = (order[it * batch:(it + 1) * batch] for it in range(per_epoch))
            for it, (x, sel) in enumerate(prefetch(lambda sel: (windows.gather(s_video[sel], s_shot[sel]), sel), batches,
                                                   threads)):
                x = x.to(device, non_blocking=True)
                y = torch.from_numpy(s_label[sel]).to(device)
                loss = balanced_cross_entropy(heads(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                bar.step(epoch, it + 1, per_epoch, float(np.mean(losses)))
            probs = score_videos(heads, windows, len(val_names), device, cfg.eval_batch)
            metrics = movienet_metrics({v: p for v, p in zip(val_names, probs)}, {v: truth[v] for v in val_names})
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr_end": schedule.get_last_lr()[0],
                   "seconds": round(time.perf_counter() - started, 3),
                   "val": {k: loop.finite(v) for k, v in metrics.items()}}
            result["epochs"].append(row)
            best = result["best"]
            if best is None or metrics["f1"] > best["f1"]:
                _save_checkpoint(result["checkpoint"], encoder_state, heads)
                result["best_epoch"], result["best"] = epoch, row["val"]
            loop.write_json(result, loop.join(cfg.out, loop.METRICS))
            loop.save_torch({"epoch": epoch, "heads": heads.state_dict(), "optimizer": optimizer.state_dict(),
                             "schedule": schedule.state_dict(), "result": _json_text(result)}, last_path)
            bar.epoch(epoch, f"loss {row['train_loss']:.4f}  val ap {metrics['ap']:.4f} f1 {metrics['f1']:.4f} "
                             f"miou {metrics['miou']:.4f} recall@3s {metrics['recall_at_3s']:.4f}"
                             + ("  (best)" if result["best_epoch"] == epoch else ""))
            if on_epoch is not None:
                on_epoch(epoch)
        return result
    finally:
        cache.close()


def load_state_keys(path: str) -> list[str]:
    """The tensor names of a checkpoint (the state_dict of a Lightning file), without its data."""
    from reelbeam.models.checkpoints import tensor_shapes

    return list(tensor_shapes(path))


def _json_text(obj) -> str:
    import json

    return json.dumps(obj, default=loop._plain)


def _resume(cfg, last_path, settings, heads, optimizer, schedule, result):
    import json

    if not loop.exists(last_path):
        raise TrainError(f"--resume: {last_path} does not exist (nothing to resume; run without --resume)")
    state = loop.load_torch(last_path)
    saved = json.loads(state["result"])
    loop.check_resume_settings(saved["settings"], settings, _RESUME_FREE, last_path)
    heads.load_state_dict(state["heads"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    saved["settings"] = settings
    return int(state["epoch"]) + 1, saved
