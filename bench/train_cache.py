"""The training feature cache at scale: how fast `reelbeam train` streams `shot_embeddings` into its
memory-mapped cache, and that its memory does not grow with the table.

    .venv/bin/python bench/train_cache.py                       # 20,000 and 80,000 shots
    .venv/bin/python bench/train_cache.py --shots 20000 200000  # bench/out/train_cache.json

For each size: a `shot_embeddings` table of that many 2048-d float32 rows (fabricated, 200 shots a
video, committed through the store in files of 10,000 rows, as a stage's bundles write them), then
in a fresh process: `EmbeddingCache` over all its videos, timed, with the process's peak resident
memory (`ru_maxrss`) before and after, and 20 batches of 1,024 random 17-shot windows gathered from
the cache as training does, in the training loop's thread and with 2 and 4 prefetch threads. Figures: rows/s and MB/s into the cache, the peak RSS added by the
cache build (bounded by a record batch, not by the table), the cache file's size per million
shots, and windows/s of the gather (page cache warm).
"""

import multiprocessing as mp
import os
import shutil
import sys
import time

from common import bench_parser, report  # noqa: F401 - puts tests/ and the repo on sys.path

import numpy as np
import pyarrow as pa

DIM = 2048
PER_VIDEO = 200
FILE_ROWS = 10_000


def _write(out: str, shots: int) -> None:
    from reelbeam.schemas import schema_for
    from reelbeam.store import tables as store

    run_id = store.new_run_id()
    schema = schema_for("shot_embeddings")
    uri = store.table_uri(out, "shot_embeddings")
    paths, videos = [], set()
    rng = np.random.default_rng(0)
    for start in range(0, shots, FILE_ROWS):
        n = min(FILE_ROWS, shots - start)
        idx = np.arange(start, start + n)
        vids = [f"{i // PER_VIDEO:016x}" for i in idx]
        videos.update(vids)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(n * DIM, dtype=np.float32)), DIM)
        t = pa.Table.from_arrays(
            [pa.array(vids), pa.array([f"{v}-{i % PER_VIDEO}" for v, i in zip(vids, idx)]),
             pa.array((idx % PER_VIDEO).astype(np.int32)), pa.array(["bench"] * n),
             emb.cast(schema.field("embedding").type)], schema=schema)
        paths.append(store.write_data_file(uri, "shot_embeddings", t, run_id, "bassl_encoder"))
    store.commit(out, "shot_embeddings", [store.Change("bassl_encoder", paths, videos)], run_id=run_id, append_only=True)
    from outputs import write_table

    write_table(out, "videos", [{"video_id": v, "uri": f"/v/{v}.mp4", "status": "ok"} for v in sorted(videos)])


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(out: str, cache_dir: str, queue) -> None:
    from reelbeam.train import data
    from reelbeam.train.scenes import _Windows, prefetch

    names = [v["uri"] for v in data._dataset(out, "videos").to_table(columns=["uri"]).to_pylist()]
    refs = data.match_videos([out], names)
    before = _peak_mb()
    t = time.perf_counter()
    cache = data.EmbeddingCache(refs, "shot_embeddings", "shot_idx", DIM, "bench", cache_dir)
    build = time.perf_counter() - t
    after = _peak_mb()
    windows = _Windows(cache, list(refs), 8)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, len(refs), 1024), rng.integers(0, PER_VIDEO, 1024)) for _ in range(20)]
    gather = {}
    for threads in (0, 2, 4):
        t = time.perf_counter()
        for _ in prefetch(lambda b: windows.gather(*b), batches, threads):
            pass
        gather[threads] = round(len(batches) * 1024 / (time.perf_counter() - t))
    queue.put({"rows": cache.num_rows, "build_s": round(build, 2), "rows_per_s": round(cache.num_rows / build),
               "mb_per_s": round(cache.num_rows * DIM * 4 / build / 1e6, 1),
               "peak_rss_mb_before_build": round(before), "peak_rss_mb_after_build": round(after),
               "peak_rss_added_mb": round(after - before),
               "cache_file_gb_per_million_shots": round(os.path.getsize(cache.path) / cache.num_rows * 1e6 / 1e9, 2),
               "windows_per_s_gather_by_threads": gather})
    cache.close()


def main() -> int:
    parser = bench_parser(__doc__, "train_cache")
    parser.add_argument("--shots", type=int, nargs="+", default=[20_000, 80_000])
    args = parser.parse_args()
    results = []
    for shots in args.shots:
        root = os.path.join(args.workdir, f"shots_{shots}")
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        _write(os.path.join(root, "out"), shots)
        written = time.perf_counter() - t
        queue = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(target=_measure, args=(os.path.join(root, "out"), os.path.join(root, "cache"), queue))
        p.start()
        r = queue.get()
        p.join()
        results.append({"shots": shots, "table_gb": round(shots * DIM * 4 / 1e9, 2), "write_table_s": round(written, 1), **r})
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    return report({"load_before": load, "cpus": os.cpu_count(), "results": results}, args.out)


if __name__ == "__main__":
    sys.exit(main())
