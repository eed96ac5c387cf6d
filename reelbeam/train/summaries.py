"""`reelbeam train summaries`: CLIP-It's scoring transformer on `frame_embeddings` reelbeam has
written and TVSum-style importance annotations (reference/cmd_clipit.md B.3, B.6, B.7).

- Input per video: its CLIP frame features in frame order (L2-normalised per frame, as at
  inference), and a text block: the sentences of `--query` / `--queries-file` (each query is its
  own text block, one training sample per video and query, as the pipeline scores each query
  apart), else the annotation's own sentence features (h5 `features_clip_txt`, [7, 512]), else the
  query-less text the pipeline uses without a query (`clipit.video_text_block`). Text blocks are
  built by the pipeline's own functions (`text_block`: the 7-sentence rule, one L2 norm over the
  3584-d block).
- Target: the annotation's importance at each sampled frame: h5 `gtscore` at `picks` (TVSum's
  mean user score scaled to [0, 1]), or a CSV `video,frame,score`; a score is held from its frame
  to the next annotated one (`summarization.frame_scores`), so features sampled at other frames
  than the annotation's `picks` still get the right target. CSV scores outside [0, 1] are min-max
  scaled per video (the model's output is a sigmoid).
- Loss: ModelScope's, the mean squared error of the scores against the target (`nn.MSELoss`), one
  video a step (ModelScope's `view(1, -1)`). The paper's weighted BCE with reconstruction and
  diversity terms is not implemented. Optimiser: ModelScope's `configuration.json` (optimiser,
  epochs) is not visible, so PGL-SUM's published defaults: Adam lr 5e-5, L2 1e-5, gradient norm
  clipped at 5; 50 epochs by default (PGL-SUM trains 200). Train mode applies the reference's
  dropouts (0.1 in attention and feed-forward, 0.5 in the regressor).
- Model: from `--checkpoint` (ModelScope's pytorch_model.pt, decoder kept so the file stays
  strict-loadable) or fresh with the reference's init (xavier_uniform on every weight of dim > 1
  except `linear_1`/`linear_2`, which the reference creates after that loop).
- Every epoch: validation MSE, and where the annotation has `user_summary` and `change_points`
  (h5), the F-score of `reelbeam evaluate summaries`' reference protocol: the dataset's KTS shots,
  15 % knapsack, F-score against each user, averaged over users (TVSum's 'avg'). The best epoch by
  that F-score (by the lowest validation MSE where none is available) is kept.

Writes to `--out`: `pytorch_model.pt` (a flat state_dict with the published file's keys, decoder
included), which `reelbeam run --clipit-checkpoint` loads unchanged; `metrics.json`; `last.pt`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from reelbeam.train import TrainError, loop
from reelbeam.train.data import EmbeddingCache, choose_model, match_videos
from reelbeam.train.split import split_videos


@dataclasses.dataclass
class Annotation:
    """One video's training target. gtscore: importance per position in `picks` (frame indices);
    user_summary [users, frames], change_points [shots, 2]: for the F-score (h5 only);
    text: sentence features [k, 512] (h5 `features_clip_txt`) or None."""

    picks: np.ndarray
    gtscore: np.ndarray
    n_frames: int | None = None
    user_summary: np.ndarray | None = None
    change_points: np.ndarray | None = None
    text: np.ndarray | None = None


def read_annotations(path: str) -> dict[str, Annotation]:
    """{video name: Annotation} from a TVSum/PGL-SUM/ModelScope h5 or a CSV video,frame,score."""
    import os

    if not os.path.exists(path):
        raise TrainError(f"{path}: no such annotation file")
    if path.endswith(".csv"):
        return _read_csv(path)
    if path.endswith((".h5", ".hdf5")):
        return _read_h5(path)
    raise TrainError(f"{path}: annotations must be an .h5 (gtscore, picks, ...) or a .csv (video,frame,score)")


def _read_h5(path: str) -> dict[str, Annotation]:
    from reelbeam.metrics.summarization import h5_videos

    out = {}
    for name, key, get in h5_videos(path, TrainError, "annotations"):
        gt = get("gtscore")
        if gt is None:
            raise TrainError(f"{path}: group {key!r} has no 'gtscore' (the training target)")
        picks = get("picks")
        picks = np.arange(len(gt)) * 15 if picks is None else picks.astype(np.int64)
        if len(picks) != len(gt):
            raise TrainError(f"{path}: group {key!r}: {len(gt)} gtscore values for {len(picks)} picks")
        n = get("n_frames")
        txt = get("features_clip_txt")
        out[name] = Annotation(
            picks=picks, gtscore=gt.astype(np.float32).ravel(), n_frames=int(n) if n is not None else None,
            user_summary=get("user_summary"), change_points=get("change_points"),
            text=None if txt is None else txt.astype(np.float32).reshape(-1, 512))
    return out


def _read_csv(path: str) -> dict[str, Annotation]:
    rows: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"video", "frame", "score"} <= set(reader.fieldnames or ()):
            raise TrainError(f"{path}: expected a header video,frame,score, got {reader.fieldnames}")
        for n, row in enumerate(reader, 2):
            try:
                rows.setdefault(row["video"], []).append((int(row["frame"]), float(row["score"])))
            except (TypeError, ValueError):
                raise TrainError(f"{path}:{n}: expected an integer frame and a number score, got {row}") from None
    out = {}
    for vid, pairs in rows.items():
        pairs.sort()
        frames = np.array([p[0] for p in pairs], np.int64)
        if len(np.unique(frames)) != len(frames):
            raise TrainError(f"{path}: video {vid!r} has frame {int(frames[np.flatnonzero(np.diff(frames) == 0)[0]])} twice")
        score = np.array([p[1] for p in pairs], np.float32)
        if score.min() < 0 or score.max() > 1:
            span = float(score.max() - score.min())
            score = (score - score.min()) / span if span > 0 else np.zeros_like(score)
        out[vid] = Annotation(picks=frames, gtscore=score)
    return out


def targets_at(ann: Annotation, frames: np.ndarray) -> np.ndarray:
    """The annotation's score at each of `frames` (held from each annotated frame to the next)."""
    pos = np.searchsorted(ann.picks, frames, side="right") - 1
    return ann.gtscore[np.clip(pos, 0, len(ann.gtscore) - 1)].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SummaryTrainConfig:
    outputs: tuple[str, ...]
    annotations: str
    out: str
    checkpoint: str | None = None
    queries: tuple[str, ...] = ()
    clip_model: str | None = None
    frame_model: str | None = None
    epochs: int = 50
    lr: float = 5e-5
    weight_decay: float = 1e-5
    clip_norm: float = 5.0
    seed: int = 0
    split: str | None = None
    val_key: str = "val"
    split_index: int = 0
    val_fraction: float = 0.2
    skip_unmatched: bool = False
    device: str = "auto"
    cache_dir: str | None = None
    resume: bool = False


_RESUME_FREE = ("resume", "cache_dir", "device")


def fresh_model(config, seed: int):
    """ClipIt with the reference's init (module doc)."""
    from reelbeam.models.clipit import ClipIt

    torch.manual_seed(seed)
    model = ClipIt(config)
    for name, p in model.named_parameters():
        if p.dim() > 1 and not name.startswith(("linear_1.", "linear_2.")):
            torch.nn.init.xavier_uniform_(p)
    return model


def _text_blocks(cfg: SummaryTrainConfig, anns: dict, names: list[str], feats: dict) -> dict[str, list[np.ndarray]]:
    """{video: [text block per query]} (module doc)."""
    from reelbeam.models.clipit import text_block, video_text_block

    if cfg.queries:
        from reelbeam.models.checkpoints import CheckpointError
        from reelbeam.models.clip import encode_texts, load_clip
        from reelbeam.transforms.clip_scoring import sentences

        source = cfg.clip_model
        if source is None:
            raise TrainError("--query needs --clip-model: the CLIP model that made the frame_embeddings (its text encoder embeds the query)")
        try:
            clip = load_clip(source)
        except CheckpointError as e:
            raise TrainError(str(e)) from None
        blocks = [text_block(np.asarray(encode_texts(clip.model, clip.tokenizer, sentences(q)), np.float32)) for q in cfg.queries]
        return {n: blocks for n in names}
    out = {}
    for n in names:
        t = anns[n].text
        out[n] = [text_block(t) if t is not None and len(t) else video_text_block(feats[n])]
    return out


@loop.keeps_torch_flags
def train_summaries(cfg: SummaryTrainConfig, progress: bool = True, on_epoch: Callable[[int], None] | None = None,
                    config=None) -> dict:
    """Train (module doc); returns the contents of metrics.json. `config`: a ClipItConfig other than
    the published one (tests; the CLI always trains the published architecture)."""
    from reelbeam.metrics.summarization import reference_summary, summary_fscore
    from reelbeam.models.checkpoints import CheckpointError
    from reelbeam.models.clipit import ClipItConfig, load_clipit
    from reelbeam.models.device import resolve_device
    from reelbeam.transforms.summaries import l2_normalize_rows

    config = config or ClipItConfig()
    if cfg.epochs < 1:
        raise TrainError(f"--epochs must be at least 1, got {cfg.epochs}")
    if cfg.resume and not loop.exists(loop.join(cfg.out, loop.LAST)):  # before hours of caching
        raise TrainError(f"--resume: {loop.join(cfg.out, loop.LAST)} does not exist (nothing to resume; run without --resume)")
    anns = read_annotations(cfg.annotations)
    if not anns:
        raise TrainError(f"{cfg.annotations}: no annotated videos")
    refs = match_videos(cfg.outputs, sorted(anns), cfg.skip_unmatched)
    train_names, val_names = split_videos(list(refs), cfg.split, cfg.val_fraction, cfg.seed, cfg.val_key, cfg.split_index)
    model_name = choose_model(refs, "frame_embeddings", cfg.frame_model, "--frame-model")
    cache = EmbeddingCache(refs, "frame_embeddings", "frame_idx", config.d_frame, model_name, cfg.cache_dir)
    try:
        feats, frames = {}, {}
        for name, ref in refs.items():
            fr = cache.keys[name]
            if len(fr) == 0:
                raise TrainError(f"{ref.uri} has no frame_embeddings (of model {model_name!r})")
            n = anns[name].n_frames
            if n is not None and fr[-1] >= n:
                raise TrainError(f"the annotation of {name!r} does not match the frames of {ref.uri}: it has {n} frames, "
                                 f"the frame_embeddings reach frame {int(fr[-1])}")
            feats[name] = l2_normalize_rows(np.asarray(cache.features[cache.rows[name]], np.float32))
            frames[name] = fr
    finally:
        cache.close()
    texts = _text_blocks(cfg, anns, list(refs), feats)
    device = resolve_device(cfg.device)
    loop.deterministic(device)
    if cfg.checkpoint:
        try:
            model = load_clipit(cfg.checkpoint, "cpu", config, keep_decoder=True)
        except CheckpointError as e:
            raise TrainError(str(e)) from None
    else:
        model = fresh_model(config, cfg.seed)
    model = model.to(device)
    trainable = [p for n, p in model.named_parameters() if not n.startswith(("decoder.", "layer_norm_img_", "layer_norm_txt."))]
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    samples = [(n, q) for n in train_names for q in range(len(texts[n]))]
    settings = dataclasses.asdict(cfg)
    settings.update(outputs=list(cfg.outputs), queries=list(cfg.queries), frame_model=model_name,
                    loss="MSE on gtscore (ModelScope)", optimizer=f"Adam(lr={cfg.lr}, weight_decay={cfg.weight_decay})",
                    batch="one video a step", selection="best validation F-score (TVSum 'avg'), else lowest validation MSE",
                    model_config=dataclasses.asdict(config))
    result = {"settings": settings, "split": {"train": train_names, "val": val_names}, "epochs": [], "best_epoch": None,
              "best": None, "checkpoint": loop.join(cfg.out, loop.CHECKPOINT)}
    loop.makedirs(cfg.out)
    last_path = loop.join(cfg.out, loop.LAST)
    start = 1
    if cfg.resume:
        start, result = _resume(last_path, settings, model, optimizer)
    chunk = config.n_position

    def forward(name: str, q: int) -> torch.Tensor:
        x = torch.from_numpy(feats[name]).to(device)
        t = torch.from_numpy(texts[name][q]).to(device).reshape(1, 1, -1)
        return torch.cat([model(x[None, s:s + chunk], t)[0] for s in range(0, len(x), chunk)])

    bar = loop.Bar(cfg.epochs, enabled=progress)
    for epoch in range(start, cfg.epochs + 1):
        started = time.perf_counter()
        loop.seed_epoch(cfg.seed, epoch)
        model.train()
        losses = []
        for i, k in enumerate(np.random.default_rng([cfg.seed, epoch]).permutation(len(samples))):
            name, q = samples[k]
            y = torch.from_numpy(targets_at(anns[name], frames[name])).to(device)
            loss = F.mse_loss(forward(name, q), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.step(epoch, i + 1, len(samples), float(np.mean(losses)))
        model.eval()
        mse, fscores = [], []
        with torch.no_grad():
            for name in val_names:
                a = anns[name]
                for q in range(len(texts[name])):
                    s = forward(name, q).float().cpu().numpy()
                    mse.append(float(np.mean((s - targets_at(a, frames[name])) ** 2)))
                    if a.user_summary is not None and a.change_points is not None:
                        n = a.n_frames or int(a.user_summary.shape[1])
                        summary = reference_summary(a.change_points, s, n, frames[name])
                        fscores.append(summary_fscore(summary, a.user_summary, "avg"))
        val = {"mse": float(np.mean(mse)), "fscore": float(np.mean(fscores)) if fscores else None, "videos": len(val_names)}
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": round(time.perf_counter() - started, 3), "val": val}
        result["epochs"].append(row)
        best = result["best"]
        better = best is None or (val["fscore"] > best["fscore"] if val["fscore"] is not None else val["mse"] < best["mse"])
        if better:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            loop.save_torch(state, result["checkpoint"])
            result["best_epoch"], result["best"] = epoch, val
        loop.write_json(result, loop.join(cfg.out, loop.METRICS))
        loop.save_torch({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "result": json.dumps(result, default=loop._plain)}, last_path)
        bar.epoch(epoch, f"loss {row['train_loss']:.4f}  val mse {val['mse']:.4f}"
                  + (f" fscore {val['fscore']:.4f}" if val["fscore"] is not None else "")
                  + ("  (best)" if result["best_epoch"] == epoch else ""))
        if on_epoch is not None:
            on_epoch(epoch)
    return result


def _resume(last_path, settings, model, optimizer):
    if not loop.exists(last_path):
        raise TrainError(f"--resume: {last_path} does not exist (nothing to resume; run without --resume)")
    state = loop.load_torch(last_path)
    saved = json.loads(state["result"])
    loop.check_resume_settings(saved["settings"], json.loads(json.dumps(settings, default=loop._plain)), _RESUME_FREE,
                               last_path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    saved["settings"] = settings
    return int(state["epoch"]) + 1, saved


def main_summaries(args) -> int:
    """`reelbeam train summaries` from parsed arguments."""
    from reelbeam.transforms.clip_scoring import queries_of

    try:
        queries = queries_of(args.query, args.queries_file)
    except ValueError as e:
        raise TrainError(str(e)) from None
    cfg = SummaryTrainConfig(
        outputs=tuple(args.outputs), annotations=args.annotations, out=args.out, checkpoint=args.checkpoint,
        queries=tuple(dict.fromkeys(q.strip() for q in queries if q.strip())), clip_model=args.clip_model,
        frame_model=args.frame_model, epochs=args.epochs or 50, lr=args.lr, seed=args.seed, split=args.split,
        val_key=args.val_key, split_index=args.split_index, val_fraction=args.val_fraction,
        skip_unmatched=args.skip_unmatched, device=args.device, cache_dir=args.cache_dir, resume=args.resume)
    result = train_summaries(cfg, progress=not args.quiet)
    best = result["best"] or {}
    fs = best.get("fscore")
    print(f"reelbeam train summaries: best epoch {result['best_epoch']} (val "
          + (f"fscore {fs:.4f}, " if fs is not None else "") + f"mse {best.get('mse', 0):.4f}); "
          f"checkpoint {result['checkpoint']} (--clipit-checkpoint)")
    return 0
