"""The table store at scale: commit stage results for many synthetic videos into a Delta table, as a
stage of a run does, and time the commits as the table grows, reads of one video's rows, a re-run's
commit (the replace path) and row counts.

    .venv/bin/python bench/store.py            # 100,000 videos; bench/out/store.json
    # ~8 min on the 2 shared cores under a load of ~10 (docs/BENCHMARKS.md, "Scale"), most of it commits
    .venv/bin/python bench/store.py --videos 20000 --keep   # smaller; keep the output folder

No decoding: each video gets `--shots-per-video` fabricated `shots` rows (ids as the pipeline
makes them: 16 hex digits of a hash, so a batch of videos spans the whole id range). Each commit
is one `commit_stages` call of the `shots` stage for `--per-commit` videos whose rows were written as
`--files-per-commit` data files (one per bundle), exactly the calls a stage's commit step makes:
the ledger's intent rows, the table's commit, the final ledger rows.

Figures (wall seconds; the machine is shared, so `load_before` is recorded):
- commit_seconds: first, median, p90, max and last of the commits, and every 10th commit;
- read_one_video: `reelbeam.read(OUT, "shots", filter=ds.field("video_id") == vid)` at several
  table sizes (best of 3, a different video each time), split into listing the committed files
  (the Delta log) and scanning them, with the files and row groups the scan had to open;
- rerun: a commit of 1,000 videos committed before (their rows replaced, never duplicated): the
  1,000 videos of one earlier commit, and 1,000 videos spread over every earlier commit;
- row_counts: `reelbeam.store.tables.row_counts` (from the log, no data read) and the counts;
- what_if_reads: reads of one video if the final table's files were laid out otherwise (copies in
  a scratch folder, read with the same pyarrow dataset scan as `reelbeam.read`; the table itself is
  not changed): one file per (run, stage) with its rows sorted by video_id, and every row sorted by
  video_id and split into files of disjoint id ranges, opened only where the file's min/max (as
  the Delta log keeps them) holds the id.
"""

import hashlib
import os
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402  (also puts tests/ and the repo on sys.path)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from reelbeam import read  # noqa: E402
from reelbeam.schemas.tables import schema_for  # noqa: E402
from reelbeam.store import tables as store  # noqa: E402

TABLE = "shots"
STAGE = "shots"
SETTINGS = "bench(synthetic)"


def video_ids(n: int) -> list[str]:
    """Ids like the pipeline's (hex of a hash): uniformly spread, in no order."""
    return [hashlib.sha1(f"video-{i}".encode()).hexdigest()[:16] for i in range(n)]


def shot_rows(videos: list[str], per_video: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(videos) * per_video
    vid = np.repeat(np.array(videos, dtype=object), per_video)
    idx = np.tile(np.arange(per_video, dtype=np.int32), len(videos))
    length = rng.integers(12, 240, size=n).astype(np.int32)
    start = np.zeros(n, dtype=np.int32)
    for k in range(1, per_video):  # each video's shots follow each other
        start[k::per_video] = start[k - 1::per_video] + length[k - 1::per_video]
    end = start + length - 1
    return pa.Table.from_pydict({
        "video_id": vid,
        "shot_idx": idx,
        "shot_id": [f"{v[:8]}{s:08x}" for v, s in zip(vid, start)],
        "start_frame": start,
        "end_frame": end,
        "start_time": start / 25.0,
        "end_time": (end + 1) / 25.0,
        "num_frames": length,
        "detector": np.full(n, "transnetv2", dtype=object),
        "max_transition_prob": rng.random(n, dtype=np.float32),
        "motion_score": rng.random(n, dtype=np.float32) * 4,
    }, schema=schema_for(TABLE))


def commit_batch(out: str, videos: list[str], per_video: int, files: int, seed: int) -> float:
    """Write the batch's rows as `files` data files and commit them as the stage's commit step
    does; returns the commit's wall seconds (writing the data files is the workers' part, not
    timed)."""
    run_id = store.new_run_id()
    uri = store.table_uri(out, TABLE)
    rows = shot_rows(videos, per_video, seed)
    step = -(-len(videos) // files)
    paths = [store.write_data_file(uri, TABLE, rows.slice(i * step * per_video, step * per_video), run_id, STAGE)
             for i in range(files) if i * step < len(videos)]
    t = time.perf_counter()
    store.commit_stages(out, run_id, [store.StageCommit(STAGE, SETTINGS, [TABLE], {TABLE: paths}, videos)])
    return time.perf_counter() - t


def read_one(out: str, vid: str) -> dict:
    """Time reelbeam.read of one video's rows, and its two parts."""
    t0 = time.perf_counter()
    data = read(out, TABLE, filter=ds.field("video_id") == vid)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    files = store.active_files(out, TABLE)
    listing = time.perf_counter() - t0
    dataset = ds.dataset([f.path for f in files], schema=schema_for(TABLE), format=store.parquet_format())
    t0 = time.perf_counter()
    fragments = [rg for f in dataset.get_fragments(filter=ds.field("video_id") == vid)
                 for rg in f.split_by_row_group(filter=ds.field("video_id") == vid)]
    pruning = time.perf_counter() - t0
    return {"seconds": total, "list_files_seconds": listing, "row_group_pruning_seconds": pruning,
            "rows": data.num_rows, "files": len(files), "row_groups_left_after_stats": len(fragments)}


def best_read(out: str, vids: list[str]) -> dict:
    runs = [read_one(out, v) for v in vids]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "median_seconds": statistics.median(r["seconds"] for r in runs)}


def what_if_reads(out: str, scratch: str, probes: list[str]) -> dict:
    """Reads of one video's rows over two other layouts of the table's rows (see the docstring)."""
    fmt = store.parquet_format()
    schema = schema_for(TABLE)
    parts = store.active_files(out, TABLE)
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)

    def best(fn) -> float:
        times = []
        for vid in probes:
            t = time.perf_counter()
            assert fn(vid) > 0
            times.append(time.perf_counter() - t)
        return min(times)

    by_run: dict[str, list[str]] = {}
    for p in parts:
        by_run.setdefault(p.run_id, []).append(p.path)
    per_run = []
    for i, paths in enumerate(by_run.values()):
        rows = ds.dataset(paths, schema=schema, format=fmt).to_table().sort_by("video_id")
        per_run.append(os.path.join(scratch, f"run-{i}.parquet"))
        pq.write_table(rows, per_run[-1], compression="zstd", write_page_checksum=True, row_group_size=2048)
    one_per_run = ds.dataset(per_run, schema=schema, format=fmt)
    out_b = best(lambda v: one_per_run.to_table(filter=ds.field("video_id") == v).num_rows)

    rows = ds.dataset([p.path for p in parts], schema=schema, format=fmt).to_table().sort_by("video_id")
    ranges, step = [], 65536
    for i in range(0, rows.num_rows, step):
        chunk = rows.slice(i, step)
        path = os.path.join(scratch, f"range-{i // step}.parquet")
        pq.write_table(chunk, path, compression="zstd", write_page_checksum=True, row_group_size=8192)
        ranges.append((chunk.column("video_id")[0].as_py(), chunk.column("video_id")[-1].as_py(), path))

    opened = []

    def pruned(vid):
        keep = [p for lo, hi, p in ranges if lo <= vid <= hi]
        opened.append(len(keep))
        return ds.dataset(keep, schema=schema, format=fmt).to_table(filter=ds.field("video_id") == vid).num_rows

    out_c = best(pruned)
    shutil.rmtree(scratch, ignore_errors=True)
    return {"one_sorted_file_per_run": {"files": len(per_run), "seconds": out_b},
            "clustered_by_video_id_with_min_max_pruning": {"files": len(ranges), "seconds": out_c,
                                                           "files_opened": max(opened)}}


def folder_bytes(path: str) -> dict:
    data = log = 0
    for root, _, names in os.walk(path):
        size = sum(os.path.getsize(os.path.join(root, n)) for n in names)
        if store.DELTA_LOG in root:
            log += size
        else:
            data += size
    return {"data_bytes": data, "log_bytes": log}


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "store")
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--per-commit", type=int, default=1000)
    parser.add_argument("--shots-per-video", type=int, default=10)
    parser.add_argument("--files-per-commit", type=int, default=4, help="data files per commit (bundles)")
    parser.add_argument("--read-every", type=int, default=20, help="time reads of one video every N commits")
    parser.add_argument("--keep", action="store_true", help="keep the output folder (default: deleted)")
    args = parser.parse_args(argv)

    out = os.path.join(args.workdir, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(args.workdir, exist_ok=True)
    ids = video_ids(args.videos)
    batches = [ids[i:i + args.per_commit] for i in range(0, len(ids), args.per_commit)]
    rng = np.random.default_rng(1)
    load_before = os.getloadavg()
    started = time.perf_counter()

    commits, reads = [], []
    for n, batch in enumerate(batches, 1):
        commits.append(commit_batch(out, batch, args.shots_per_video, args.files_per_commit, seed=n))
        if n in (1, 10) or n % args.read_every == 0 or n == len(batches):
            done = ids[:n * args.per_commit]
            probe = [done[int(i)] for i in rng.integers(0, len(done), size=3)]
            reads.append({"commits": n, "videos": len(done), **best_read(out, probe)})
            print(f"commit {n}/{len(batches)}: {commits[-1]:.2f} s; read one video {reads[-1]['seconds']:.3f} s "
                  f"({reads[-1]['files']} files)", file=sys.stderr)
    fill_seconds = time.perf_counter() - started

    # Re-runs: the replace path. The 1,000 videos of one earlier commit (their files go whole), then
    # 1,000 spread over every earlier commit (every file holding one is rewritten without it).
    before = store.row_counts(out)[TABLE]
    same = commit_batch(out, batches[len(batches) // 2], args.shots_per_video, args.files_per_commit, seed=10**6)
    spread = [ids[int(i)] for i in rng.choice(len(ids), size=args.per_commit, replace=False)]
    scattered = commit_batch(out, spread, args.shots_per_video, args.files_per_commit, seed=10**6 + 1)
    after_counts_t = time.perf_counter()
    counts = store.row_counts(out)
    counts_seconds = time.perf_counter() - after_counts_t
    assert counts[TABLE] == before == args.videos * args.shots_per_video, (counts, before)
    assert counts[store.LEDGER] == args.videos, counts
    final_read = best_read(out, [spread[0], spread[1], batches[0][0]])
    dt = store.open_table(out, TABLE)
    what_if = what_if_reads(out, os.path.join(args.workdir, "what_if"), [spread[2], spread[3], batches[-1][0]])

    summary = {
        "what": "commit_stages of the shots stage, per batch of videos, into one Delta table (bench/store.py)",
        "videos": args.videos, "per_commit": args.per_commit, "shots_per_video": args.shots_per_video,
        "files_per_commit": args.files_per_commit,
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "commit_seconds": {
            "first": commits[0], "median": statistics.median(commits),
            "p90": float(np.percentile(commits, 90)), "max": max(commits), "last": commits[-1],
            "every_10th": [round(c, 3) for c in commits[9::10]],
        },
        "fill_seconds": fill_seconds,
        "read_one_video": reads,
        "read_one_video_after_reruns": final_read,
        "rerun_commit_seconds": {"same_1000_as_one_earlier_commit": same, "1000_spread_over_every_commit": scattered},
        "what_if_reads": what_if,
        "row_counts_seconds": counts_seconds,
        "row_counts": counts,
        "table": {"version": dt.version(), "files": len(store.active_files(out, TABLE)),
                  **folder_bytes(store.table_uri(out, TABLE))},
        "ledger": {"version": store.open_table(out, store.LEDGER).version(),
                   "files": len(store.active_files(out, store.LEDGER))},
    }
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
