"""`reelbeam evaluate TASK OUTPUT --truth PATH`: a run's tables against ground truth.

Tasks and the tables they read (their committed rows, any fsspec URL):

- `shots`: `shots` (or, with `--threshold`, `frames.transition_prob` cut again by TransNetV2's
  evaluation rule) against shot-boundary truth: precision / recall / F1 within `--tolerance` frames.
- `scenes`: `scenes` against scene truth: boundary precision / recall / F1 within `--tolerance-s`
  seconds (converted to frames with `videos.avg_fps`) and mIoU.
- `movienet`: `boundaries.p_boundary` against MovieNet `label318` / `shot_movie318` (or JSON): BaSSL's
  AP, F1, recall, Recall@3s and mIoU. Needs a run whose shots are MovieNet's (same count per movie).
- `summaries`: `summaries` (the kept segments) and `frame_scores` against TVSum / SumMe annotations:
  F-score of the run's summaries, F-score of the scores through the dataset's shots and the 15%
  knapsack (the reference protocol), Kendall's tau and Spearman's rho, and a random baseline.

Videos are matched to truth names by video_id, URI, file name or file name without extension
(`--map CSV` with columns `truth,video` for others). Prints a table; `--json PATH` writes the
figures. Errors (missing files, unknown formats, nothing matched) print one line and exit with 2.
Metric definitions: reelbeam.metrics and docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import posixpath
import sys
from collections.abc import Sequence

import fsspec
import numpy as np

from reelbeam.metrics import movienet, scene_boundaries, shot_boundaries, summarization
from reelbeam.metrics.counts import Counts
from reelbeam.metrics.truth import TruthFormatError


class EvaluationError(Exception):
    """Bad input to `reelbeam evaluate`; the message is printed as one line."""


# ------------------------------------------------------------------------------------------------
# Tables and matching


def read_table(output: str, table: str, columns: Sequence[str], required: bool = True) -> dict | None:
    """`columns` (those the table has) of the table's committed rows (`reelbeam.api.read`: rows of
    an unfinished or replaced run are not read) as {column: numpy array}."""
    from reelbeam.api import TableNotFound, read
    from reelbeam.schemas.tables import schema_for

    names = set(schema_for(table).names)
    try:
        t = read(output, table, columns=[c for c in columns if c in names])
    except TableNotFound as e:
        if required:
            raise EvaluationError(f"{posixpath.join(output, table)}/: no `{table}` table in this run") from e
        return None
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}


def match_videos(output: str, truth_names: Sequence[str], mapping: str | None) -> dict[str, dict]:
    """{truth name: videos row} for the truth names that name one video of OUTPUT (module doc;
    the names `reelbeam.selection` resolves, as `export --video`)."""
    from reelbeam.selection import AmbiguousVideo, VideoSelector

    v = read_table(output, "videos", ["video_id", "uri", "frame_count", "avg_fps", "nominal_fps"])
    rows = [{k: v[k][i] for k in v} for i in range(len(v["video_id"]))]
    selector = VideoSelector(rows)
    pairs = {}
    if mapping:
        try:
            with open(mapping, newline="", encoding="utf-8") as f:
                pairs = {r["truth"]: r["video"] for r in csv.DictReader(f)}
        except (OSError, KeyError) as e:
            raise EvaluationError(f"{mapping}: expected a CSV with columns truth,video ({e})") from None
    out = {}
    for name in truth_names:
        try:
            found = selector.find(pairs.get(name, name))
        except AmbiguousVideo as e:
            raise EvaluationError(f"truth {name!r}: {e}, or use --map") from None
        if found is not None:
            out[name] = found
    if not out:
        raise EvaluationError(
            f"no video of {output} matches a ground-truth name (truth: {sorted(truth_names)[:5]}, "
            f"videos: {sorted(posixpath.basename(r['uri']) for r in rows)[:5]}); use --map"
        )
    return out


def _positive(x) -> bool:
    return x is not None and bool(np.isfinite(x)) and x > 0


def _by_video(table: dict, order: str) -> dict[str, dict]:
    """Rows grouped by video_id, each group's columns sorted by `order`: {video_id: {column: array}}."""
    vids = table["video_id"].astype(str)
    if len(vids) == 0:
        return {}
    idx = np.lexsort((table[order], vids))
    starts = np.flatnonzero(np.r_[True, vids[idx][1:] != vids[idx][:-1]])
    return {vids[idx[a]]: {c: col[idx[a:b]] for c, col in table.items()} for a, b in zip(starts, np.r_[starts[1:], len(idx)])}


def _one_value(table: dict, column: str, chosen: str | None, flag: str) -> dict:
    """Rows of `table` whose `column` is `chosen`, or all when the column holds one value."""
    if column not in table:
        return table
    values = sorted({str(x) for x in table[column]})
    if chosen is None and len(values) > 1:
        raise EvaluationError(f"the table holds several {column}s {values}; choose one with {flag}")
    chosen = chosen or (values[0] if values else None)
    keep = np.array([str(x) == chosen for x in table[column]], bool)
    if not keep.any():
        raise EvaluationError(f"no rows with {column} {chosen!r}; the table has {values}")
    return {c: a[keep] for c, a in table.items()}


# ------------------------------------------------------------------------------------------------
# Tasks: each returns (column names, rows, overall row, extra JSON fields)


def _counts_row(c: Counts) -> dict:
    return c.as_dict(digits=None)


def evaluate_shots(args, truth: dict, matched: dict) -> tuple:
    if args.threshold is None:
        shots = _by_video(read_table(args.output, "shots", ["video_id", "shot_idx", "start_frame", "end_frame"]), "shot_idx")
    else:
        frames = _by_video(read_table(args.output, "frames", ["video_id", "frame_idx", "transition_prob"]), "frame_idx")
    rows, total = [], Counts()
    for name, video in matched.items():
        vid = video["video_id"]
        if args.threshold is None:
            s = shots.get(vid)
            spans = np.zeros((0, 2)) if s is None else np.stack([s["start_frame"], s["end_frame"]], 1)
        else:
            p = frames.get(vid, {}).get("transition_prob")
            if p is None or np.isnan(np.asarray(p, np.float64)).any():
                raise EvaluationError(f"{video['uri']}: frames.transition_prob is missing (TransNetV2 did not run)")
            spans = shot_boundaries.scenes_from_predictions(np.asarray(p, np.float64) > args.threshold)
        c = shot_boundaries.evaluate_transitions(truth[name], shot_boundaries.transitions_from_shots(spans), args.tolerance)
        total += c
        rows.append({"video": name, "uri": video["uri"], **_counts_row(c)})
    cols = ["tp", "fp", "fn", "precision", "recall", "f1"]
    return cols, rows, _counts_row(total), {"tolerance_frames": args.tolerance, "threshold": args.threshold}


def evaluate_scenes(args, truth: dict, matched: dict) -> tuple:
    table = read_table(args.output, "scenes", ["video_id", "scene_idx", "start_frame", "end_frame", "method"])
    scenes = _by_video(_one_value(table, "method", args.method, "--method"), "scene_idx")
    rows, total, mious = [], Counts(), []
    for name, video in matched.items():
        s = scenes.get(video["video_id"])
        if s is None:
            raise EvaluationError(f"{video['uri']}: no rows in the scenes table")
        fps = next((f for f in (video.get("avg_fps"), video.get("nominal_fps")) if _positive(f)), None)
        if fps is None:
            raise EvaluationError(f"{video['uri']}: the videos table has no frame rate to convert --tolerance-s")
        pred = np.stack([s["start_frame"], s["end_frame"]], 1)
        c = scene_boundaries.match_boundaries(
            scene_boundaries.scene_ends(pred), scene_boundaries.scene_ends(truth[name]), args.tolerance_s * fps
        )
        m = scene_boundaries.scene_miou(pred, truth[name])
        total += c
        mious.append(m)
        rows.append({"video": name, "uri": video["uri"], **_counts_row(c), "miou": m})
    cols = ["tp", "fp", "fn", "precision", "recall", "f1", "miou"]
    return cols, rows, {**_counts_row(total), "miou": float(np.mean(mious))}, {"tolerance_s": args.tolerance_s}


def evaluate_movienet(args, truth: dict, matched: dict) -> tuple:
    table = read_table(args.output, "boundaries", ["video_id", "shot_idx", "p_boundary", "model"])
    bounds = _by_video(_one_value(table, "model", args.model, "--model"), "shot_idx")
    probs, rows, skipped = {}, [], {}
    for name, video in matched.items():
        b = bounds.get(video["video_id"])
        n = len(truth[name].shots)
        if b is None or len(b["shot_idx"]) != n:
            skipped[name] = f"{0 if b is None else len(b['shot_idx'])} shots scored, MovieNet lists {n}"
            continue
        probs[name] = dict(zip(b["shot_idx"].tolist(), np.asarray(b["p_boundary"], np.float64).tolist()))
        rows.append({"video": name, "uri": video["uri"], **movienet.movienet_metrics({name: probs[name]}, truth)})
    if not probs:
        raise EvaluationError(f"no movie has one boundary row per MovieNet shot ({skipped}); the run must use MovieNet's shots")
    cols = ["shots", "ap", "f1", "recall", "recall_at_3s", "miou"]
    return cols, rows, movienet.movienet_metrics(probs, truth), {"skipped": skipped}


def _groups(table: dict | None, vid: str, source: str, keys: Sequence[str]) -> dict[str, dict]:
    """The rows of video `vid`, split by the values of the `keys` columns present:
    {'<source>: key=value ...': rows}."""
    if table is None:
        return {}
    idx = np.flatnonzero(table["video_id"] == vid)
    labels = np.array([" ".join([f"{source}:", *(f"{k}={table[k][i]}" for k in keys if k in table)]) for i in idx])
    return {lab: {c: a[idx[labels == lab]] for c, a in table.items()} for lab in dict.fromkeys(labels.tolist())}


def evaluate_summaries(args, truth: dict, matched: dict) -> tuple:
    sums = read_table(args.output, "summaries", ["video_id", "query_id", "scorer", "method", "start_frame", "end_frame", "selected"], required=False)
    scores = read_table(args.output, "frame_scores", ["video_id", "frame_idx", "query_id", "model", "scorer", "score"], required=False)
    if sums is None and scores is None:
        raise EvaluationError(f"{args.output}: neither a `summaries` nor a `frame_scores` table to evaluate")
    cols = ["group", "fscore", "fscore_shots", "kendall", "spearman", "random_fscore"]
    rows = []
    for name, video in matched.items():
        t: summarization.SummaryTruth = truth[name]
        n = t.n_frames or (int(video["frame_count"]) if _positive(video.get("frame_count")) else None)
        if n is None:
            raise EvaluationError(f"{video['uri']}: neither the truth nor the videos table gives its frame count")
        has_shots = t.user_summary is not None and t.change_points is not None
        baseline = None
        if has_shots and args.random_seeds:
            r = summarization.random_summary_baseline(
                t.user_summary, n, shots=t.change_points, positions=t.picks, seeds=range(args.random_seeds), reduce=args.reduce
            )
            baseline = r["mean"]
        groups: dict[str, dict] = {}
        for label, g in _groups(sums, video["video_id"], "summaries", ["query_id", "scorer", "method"]).items():
            if t.user_summary is not None:
                summary = np.zeros(n, np.int8)
                kept = g["selected"].astype(bool) if "selected" in g else np.ones(len(g["start_frame"]), bool)
                for s, e in zip(g["start_frame"][kept], g["end_frame"][kept]):
                    summary[int(s) : int(e) + 1] = 1
                groups.setdefault(label, {})["fscore"] = summarization.summary_fscore(summary, t.user_summary, args.reduce)
        for label, g in _groups(scores, video["video_id"], "frame_scores", ["query_id", "model", "scorer"]).items():
            order = np.argsort(g["frame_idx"], kind="stable")
            pos, sc = g["frame_idx"][order], np.asarray(g["score"], np.float64)[order]
            out = groups.setdefault(label, {})
            if has_shots:
                ref = summarization.reference_summary(t.change_points, sc, n, pos)
                out["fscore_shots"] = summarization.summary_fscore(ref, t.user_summary, args.reduce)
            if t.user_scores is not None:
                full = summarization.frame_scores(sc, pos, t.user_scores.shape[1])
                out["kendall"] = summarization.rank_correlation(full, t.user_scores, "kendall")
                out["spearman"] = summarization.rank_correlation(full, t.user_scores, "spearman")
        for label, out in groups.items():
            rows.append({"video": name, "uri": video["uri"], "group": label, **{c: out.get(c) for c in cols[1:-1]}, "random_fscore": baseline})
    overall = {}
    for label in dict.fromkeys(r["group"] for r in rows):
        mine = [r for r in rows if r["group"] == label]
        overall[label] = {c: float(np.mean(v)) for c in cols[1:] if (v := [r[c] for r in mine if r.get(c) is not None])}
    return cols, rows, overall, {"reduce": args.reduce, "random_seeds": args.random_seeds}


TASKS = {
    "shots": (evaluate_shots, shot_boundaries.read_shot_truth, shot_boundaries.SHOT_FORMATS),
    "scenes": (evaluate_scenes, scene_boundaries.read_scene_truth, scene_boundaries.SCENE_FORMATS),
    "movienet": (evaluate_movienet, movienet.read_movienet_truth, movienet.MOVIENET_FORMATS),
    "summaries": (evaluate_summaries, summarization.read_summary_truth, summarization.SUMMARY_FORMATS),
}


# ------------------------------------------------------------------------------------------------
# Command line


def _at_least_0(kind):
    def parse(text: str):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability between 0 and 1, got {text}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error of `reelbeam evaluate` (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="reelbeam evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for task, (_, _, formats) in TASKS.items():
        p = sub.add_parser(task, help=f"evaluate {task} (formats: {', '.join(formats)})")
        p.add_argument("output", metavar="OUTPUT", help="the run's output folder (local path or fsspec URL)")
        p.add_argument("--truth", required=True, help="ground-truth file or folder")
        p.add_argument("--format", help=f"ground-truth format: {', '.join(formats)} (default: from the path)")
        p.add_argument("--map", help="CSV with columns truth,video naming the video of each truth name")
        p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    shots, scenes, movie, summ = (sub.choices[t] for t in TASKS)
    shots.add_argument("--tolerance", type=_at_least_0(int), default=shot_boundaries.DEFAULT_TOLERANCE, help="frames (default 2, as TransNetV2)")
    shots.add_argument("--threshold", type=_probability, help="cut frames.transition_prob at this probability instead of reading `shots`")
    shots.add_argument("--frame-offset", type=int, help="added to the truth's frame numbers (default 0; 1 for bbc, as TransNetV2)")
    scenes.add_argument("--tolerance-s", type=_at_least_0(float), default=1.0, help="seconds (default 1)")
    scenes.add_argument("--method", help="the scenes.method to evaluate when the table holds several")
    scenes.add_argument("--annotator", type=int, default=0, help="BBC Planet Earth annotator (0-4, default 0)")
    scenes.add_argument("--frame-offset", type=int, help="added to the truth's frame numbers (default 0; 1 for bbc)")
    movie.add_argument("--model", help="the boundaries.model to evaluate when the table holds several")
    summ.add_argument("--reduce", choices=("avg", "max"), default="avg", help="over users: avg (TVSum), max (SumMe, PGL-SUM)")
    summ.add_argument("--random-seeds", type=int, default=20, help="random-summary baseline draws (0: off; default 20)")
    return parser


def _read_truth(args) -> dict:
    reader = TASKS[args.task][1]
    if args.task == "shots":
        return reader(args.truth, args.format, args.frame_offset)
    if args.task == "scenes":
        return reader(args.truth, args.format, args.annotator, args.frame_offset)
    return reader(args.truth, args.format)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)


def format_table(cols: Sequence[str], rows: list[dict], overall: dict) -> str:
    """Rows (per video) and the overall figures as fixed-width text."""
    head = ["video", *cols]
    body = [[r["video"], *(_fmt(r.get(c)) for c in cols)] for r in rows]
    if rows and "group" in cols:
        body += [[f"ALL ({label})", label, *(_fmt(o.get(c)) for c in cols[1:])] for label, o in overall.items()]
    else:
        body.append([f"ALL ({len(rows)} video{'s' * (len(rows) != 1)})", *(_fmt(overall.get(c)) for c in cols)])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths))) for line in [head, *body]]
    return "\n".join(lines)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def main(argv: Sequence[str] | None = None) -> int:
    """`reelbeam evaluate` (module doc). Returns the exit code: 0, or 2 on bad input."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help (0) or a usage error, already printed in one line (2)
        return int(e.code or 0)
    try:
        fs, root = fsspec.core.url_to_fs(args.output)
        if not fs.exists(root):
            raise EvaluationError(f"{args.output}: no such output folder")
        truth = _read_truth(args)
        if not truth:
            raise EvaluationError(f"{args.truth}: no videos in the ground truth")
        matched = match_videos(args.output, list(truth), args.map)
        cols, rows, overall, settings = TASKS[args.task][0](args, truth, matched)
    except (EvaluationError, TruthFormatError) as e:
        print(f"reelbeam evaluate: error: {e}", file=sys.stderr)
        return 2
    result = {
        "task": args.task,
        "output": args.output,
        "truth": args.truth,
        "settings": settings,
        "overall": overall,
        "videos": rows,
        "truth_without_video": sorted(set(truth) - set(matched)),
    }
    print(format_table(cols, rows, overall))
    if result["truth_without_video"]:
        print(f"{len(result['truth_without_video'])} ground-truth videos not in OUTPUT: {', '.join(result['truth_without_video'][:10])}")
    if args.json:
        try:
            with fsspec.open(args.json, "w") as f:
                json.dump(_jsonable(result), f, indent=1)
        except OSError as e:
            print(f"reelbeam evaluate: error: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
