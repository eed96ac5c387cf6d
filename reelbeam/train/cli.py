"""`reelbeam train scenes|summaries --from OUTPUT ... --labels PATH --out DIR`: docs/training.md.

Bad input (labels that do not match the shots, a missing table, a bad split or checkpoint) prints
one line, `reelbeam train: error: ...`, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reelbeam.train import TrainError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="outputs", action="append", required=True, metavar="OUTPUT",
                   help="a reelbeam output (local, gs://, s3://) holding the features; repeat for several")
    p.add_argument("--out", required=True, help="folder for the checkpoint, metrics.json and last.pt (any fsspec path)")
    p.add_argument("--epochs", type=int, help="training epochs (default 20 for scenes, as BaSSL; 50 for summaries)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the shuffling, dropout and a fresh model (default 0)")
    p.add_argument("--split", help="JSON split file: {'train': [...], 'val': [...]} (MovieNet split318.json, PGL-SUM splits)")
    p.add_argument("--val-key", default="val", help="the split file's validation list (default val; 'test' for MovieNet's)")
    p.add_argument("--split-index", type=int, default=0, help="which split of a PGL-SUM/ModelScope split list (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="without --split: this fraction of the videos, seeded, validates (default 0.2)")
    p.add_argument("--skip-unmatched", action="store_true", help="train on the labelled videos found, leaving out those no output has")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda, cuda:N (default auto)")
    p.add_argument("--cache-dir", help="local folder for the feature cache (default: a temporary folder, removed after)")
    p.add_argument("--resume", action="store_true", help="continue from --out's last.pt (same settings) after its last epoch")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="reelbeam train", description="Train the scene or summary model on features an output holds.")
    sub = top.add_subparsers(dest="task", metavar="TASK", required=True, parser_class=_Parser)
    sc = sub.add_parser("scenes", help="BaSSL's CRN and boundary head on shot_embeddings and scene labels")
    _common(sc)
    sc.add_argument("--labels", required=True, help="scene labels: MovieNet folder (label318/, shot_movie318/), BaSSL anno "
                    ".ndjson, ModelScope toydata .json, or scene truth (.json, .csv, BBC root)")
    sc.add_argument("--labels-format", choices=("movienet", "movienet-json", "bassl", "modelscope", "scenes-json", "scenes-csv", "bbc"),
                    help="label format (default: guessed from the path)")
    sc.add_argument("--annotator", type=int, default=0, help="BBC Planet Earth annotator (default 0)")
    sc.add_argument("--checkpoint", required=True, help="the BaSSL checkpoint whose shot encoder made the embeddings (ModelScope "
                    "pytorch_model.pt or a BaSSL pre-training .ckpt); its CRN is the starting point")
    sc.add_argument("--from-scratch", action="store_true", help="initialise the CRN and head afresh (BaSSL's shot-level baseline lr)")
    sc.add_argument("--batch-size", type=int, default=1024, help="windows per step (default 1024, as BaSSL)")
    sc.add_argument("--base-lr", type=float, help="lr = base_lr x batch / 256 (default 2.5e-6 pre-trained CRN, 2.5e-5 from scratch)")
    sc.add_argument("--encoder-model", help="the shot_embeddings.model to train on when the outputs hold several")
    sc.add_argument("--loader-threads", type=int, help="threads gathering the next batches' windows while the model trains "
                    "(default: none on CPU, where the model uses the cores; up to 4 with a GPU)")
    sc.add_argument("--feature-dtype", choices=("float32", "float16"), default="float32",
                    help="feature cache precision (float16 halves its size; default float32)")
    su = sub.add_parser("summaries", help="CLIP-It's scoring transformer on frame_embeddings and TVSum-style annotations")
    _common(su)
    su.add_argument("--annotations", required=True, help="TVSum/PGL-SUM .h5 (gtscore, user_summary, change_points, picks) or a CSV "
                    "video,frame,score of per-frame importance")
    su.add_argument("--checkpoint", help="CLIP-It pytorch_model.pt to start from (default: a fresh model, xavier init)")
    su.add_argument("--query", action="append", default=[], help="a sentence guiding every video's summary (repeat, up to 7 used)")
    su.add_argument("--queries-file", help="one sentence per line")
    su.add_argument("--clip-model", help="CLIP model for the query text (Hugging Face id or folder; default: the frame_embeddings' model)")
    su.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (default 5e-5, PGL-SUM's)")
    su.add_argument("--frame-model", help="the frame_embeddings.model to train on when the outputs hold several")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """`reelbeam train` (module doc); returns the exit code."""
    try:
        args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if args.task == "scenes":
            from reelbeam.train.scenes import SceneTrainConfig, train_scenes

            cfg = SceneTrainConfig(
                outputs=tuple(args.outputs), labels=args.labels, checkpoint=args.checkpoint, out=args.out,
                labels_format=args.labels_format, annotator=args.annotator, from_scratch=args.from_scratch,
                epochs=args.epochs or 20, batch_size=args.batch_size, base_lr=args.base_lr, seed=args.seed,
                split=args.split, val_key=args.val_key, split_index=args.split_index, val_fraction=args.val_fraction, encoder_model=args.encoder_model,
                skip_unmatched=args.skip_unmatched, device=args.device, feature_dtype=args.feature_dtype, loader_threads=args.loader_threads,
                cache_dir=args.cache_dir, resume=args.resume)
            result = train_scenes(cfg, progress=not args.quiet)
            best = result["best"] or {}
            print(f"reelbeam train scenes: best epoch {result['best_epoch']} (val f1 {best.get('f1', 0):.4f}, "
                  f"ap {best.get('ap') or 0:.4f}); checkpoint {result['checkpoint']} (--scene-checkpoint)")
            return 0
        from reelbeam.train.summaries import main_summaries

        return main_summaries(args)
    except TrainError as e:
        print(f"reelbeam train: error: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:  # storage (unreadable table, unwritable --out), CUDA
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"reelbeam train: error: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
