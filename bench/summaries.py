"""Summary segments: `--summary-segments shots` against `kts`, scored by `reelbeam evaluate summaries`
on generated videos with generated user summaries.

    .venv/bin/python bench/summaries.py [--videos 8] [--clip tiny|vitb32] [--quick]

1. Videos: the development corpus of bench/corpus.py (natural photographs, shots of 12-150 frames
   with cuts, dissolves and fades, noise, H.264), at 320x180, with its true shot spans.
2. One pipeline run (the default stages, `--scenes none --no-json`) with a randomly initialised
   CLIP (`tiny`: tests/tiny_clip.py, the model of issue #25; `vitb32`: shaped as
   openai/clip-vit-base-patch32) and one query; then its summaries again from its frame
   embeddings (`--start-from frame_embeddings`), once with `--summary-segments kts` and once with
   `shots`. Both read the same frame scores and shots.
3. Users (5 per video): each rates every TRUE shot by its mean frame score in the run plus
   Gaussian noise (sd: half the spread of the shots' scores) and keeps the whole shots a 0/1
   knapsack picks within 15 % of the frames, as TVSum / SumMe annotators keep whole shots. The
   users thus agree with the scorer up to noise: what differs between the two runs is only how
   the scores become segments, which is what `--summary-segments` chooses.
4. `reelbeam evaluate summaries OUT --truth users.json` for each run: F-score (avg over users),
   plus the number of summaries that selected nothing and the segments per video.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # puts tests/ and the repo on sys.path

# isort: split
import corpus

QUERY = "a landscape with trees"
USERS = 5


def make_clip(folder: str, kind: str) -> str:
    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    if kind == "tiny":
        from tiny_clip import save_tiny_clip

        return save_tiny_clip(folder, seed=0)
    import torch
    from tiny_clip import vit_b32_config, write_tokenizer_files
    from transformers import CLIPModel, CLIPTokenizer

    vocab_dir = os.path.join(folder, "_vocab")
    vocab = write_tokenizer_files(vocab_dir)
    config = vit_b32_config()
    config.text_config.vocab_size = vocab
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPTokenizer.from_pretrained(vocab_dir).save_pretrained(folder)
    return folder


def user_truth(out: str, items: list[dict], seed: int = 0) -> dict:
    """{video file name: {user_summary, n_frames, change_points}} from the run's frame scores."""
    from reelbeam import read
    from reelbeam.metrics.summarization import frame_scores as spread
    from reelbeam.transforms.summaries import knapsack

    videos = {os.path.basename(v["uri"]): v for v in read(out, "videos").to_pylist()}
    scores = read(out, "frame_scores", columns=["video_id", "frame_idx", "score", "scorer"]).to_pylist()
    rng = np.random.default_rng(seed)
    truth = {}
    for item in items:
        name = os.path.basename(item["path"])
        v = videos[name]
        mine = sorted((r["frame_idx"], r["score"]) for r in scores if r["video_id"] == v["video_id"] and r["scorer"] == "clip")
        n = int(v["frame_count"])
        per_frame = spread(np.array([s for _, s in mine]), np.array([f for f, _ in mine]), n)
        shots = np.asarray(item["shots"], np.int64)
        means = np.array([per_frame[a : b + 1].mean() for a, b in shots])
        spread_sd = 0.5 * (means.std() or 1e-6)
        users = np.zeros((USERS, n), np.int8)
        for u in range(USERS):
            rated = means + rng.normal(0, spread_sd, len(means))
            for i in knapsack(int(n * 0.15), [int(b - a + 1) for a, b in shots], rated - rated.min() + 1e-3):
                users[u, shots[i][0] : shots[i][1] + 1] = 1
        truth[name] = {"user_summary": users.tolist(), "n_frames": n, "change_points": shots.tolist()}
    return truth


def evaluate(out: str, truth_path: str, json_path: str) -> dict:
    from reelbeam.evaluate import main as evaluate_main

    assert evaluate_main(["summaries", out, "--truth", truth_path, "--json", json_path, "--random-seeds", "0"]) == 0
    with open(json_path) as f:
        return json.load(f)


def segment_stats(out: str) -> dict:
    from reelbeam import read

    rows = read(out, "summaries").to_pylist()
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["video_id"], r["query_id"], r["scorer"]), []).append(r)
    clip = {k: g for k, g in groups.items() if k[2] == "clip"}
    return {
        "summaries": len(clip),
        "selected_nothing": sum(not any(r["selected"] for r in g) for g in clip.values()),
        "segments_per_video_mean": float(np.mean([len(g) for g in clip.values()])),
        "single_segment_videos": sum(len(g) == 1 for g in clip.values()),
        "method": sorted({r["method"] for g in clip.values() for r in g}),
    }


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "summaries")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--clip", choices=("tiny", "vitb32"), default="tiny")
    parser.add_argument("--quick", action="store_true", help="2 videos")
    parser.add_argument("--base", help="reuse this earlier first run (its frame embeddings, shots and scores)")
    args = parser.parse_args(argv)
    from reelbeam.pipelines.cli import run

    n = 2 if args.quick else args.videos
    cfg = corpus.CorpusConfig(seed=args.seed, videos=n, width=320, height=180)
    items = corpus.build_corpus(os.path.join(args.workdir, "corpus"), cfg, log=print)
    folder = os.path.dirname(items[0]["path"])
    clip = make_clip(os.path.join(args.workdir, f"clip_{args.clip}"), args.clip)
    runs = os.path.join(args.workdir, f"runs_{args.clip}_{n}")
    base = args.base or os.path.join(runs, "base")
    common = ["--clip-model", clip, "--query", QUERY, "--overwrite", "--direct_running_mode=in_memory"]
    if not args.base:
        run(["--input", folder, "--output", base, "--scenes", "none", "--no-json", *common])
    outs = {name: os.path.join(runs, f"segments_{name}") for name in ("kts", "shots")}
    if os.path.abspath(base) in {os.path.abspath(o) for o in outs.values()}:
        raise SystemExit(f"--base {base} is where this bench writes; move it elsewhere first")
    for name, out in outs.items():  # the same frame embeddings, shots and scores; only the segments differ
        run(["--from", base, "--start-from", "frame_embeddings", "--output", out, "--summary-segments", name,
             "--no-json", *common])
        # `evaluate` reads the videos table beside the summaries: borrow the base run's.
        shutil.rmtree(os.path.join(out, "videos"), ignore_errors=True)
        shutil.copytree(os.path.join(base, "videos"), os.path.join(out, "videos"))
    kts_out, shots_out = outs["kts"], outs["shots"]
    truth_path = os.path.join(runs, "users.json")
    with open(truth_path, "w") as f:
        json.dump(user_truth(base, items), f)
    result = {"videos": n, "frames": sum(i["frames"] for i in items), "true_shots": sum(len(i["shots"]) for i in items),
              "clip": args.clip, "query": QUERY, "users": USERS, "by_segments": {}}
    for name, out in (("kts", kts_out), ("shots", shots_out)):
        ev = evaluate(out, truth_path, os.path.join(runs, f"eval_{name}.json"))
        overall = {k: v for k, v in ev["overall"].items() if k.startswith("summaries:") and "scorer=clip" in k}
        result["by_segments"][name] = {
            "fscore": next(iter(overall.values()))["fscore"],
            "fscore_per_video": [round(r["fscore"], 4) for r in ev["videos"] if r["group"].startswith("summaries:") and "scorer=clip" in r["group"]],
            **segment_stats(out),
        }
    return report(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
