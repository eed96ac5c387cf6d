"""The trainers' reading: several outputs, record batches into the memory-mapped cache, committed
rows only, name matching; and the progress line."""

import io

import numpy as np
import pytest
from outputs import write_table

from reelbeam.train import TrainError, data, loop


def _output(root, name, videos, dim=512, step=15, frames=90, seed=0):
    out = str(root / name)
    rng = np.random.default_rng(seed)
    write_table(out, "videos", [{"video_id": vid, "uri": f"gs://b/{n}.mp4", "status": "ok"} for vid, n in videos])
    rows = []
    for vid, _ in videos:
        for f in reversed(range(0, frames, step)):  # written out of order: the cache sorts by frame
            rows.append({"video_id": vid, "frame_idx": f, "model": "m", "embedding": rng.standard_normal(dim).tolist()})
    write_table(out, "frame_embeddings", rows)
    return out, rows


def test_cache_reads_several_outputs_in_small_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "BATCH_ROWS", 4)  # many record batches, videos split across them
    a, rows_a = _output(tmp_path, "a", [("0" * 16, "one"), ("1" * 16, "two")])
    b, rows_b = _output(tmp_path, "b", [("2" * 16, "three")], seed=1)
    refs = data.match_videos([a, b], ["one", "two.mp4", "gs://b/three.mp4"])
    assert {r.output for r in refs.values()} == {a, b}
    cache = data.EmbeddingCache(refs, "frame_embeddings", "frame_idx", 512, "m", str(tmp_path / "cache"))
    try:
        assert cache.num_rows == len(rows_a) + len(rows_b)
        for name, vid, rows in (("one", "0" * 16, rows_a), ("two.mp4", "1" * 16, rows_a), ("gs://b/three.mp4", "2" * 16, rows_b)):
            want = sorted((r for r in rows if r["video_id"] == vid), key=lambda r: r["frame_idx"])
            assert cache.keys[name].tolist() == [r["frame_idx"] for r in want]
            np.testing.assert_array_equal(cache.features[cache.rows[name]], np.array([r["embedding"] for r in want], np.float32))
    finally:
        cache.close()


def test_names_that_match_nothing_or_twice(tmp_path):
    a, _ = _output(tmp_path, "a", [("0" * 16, "one")])
    b, _ = _output(tmp_path, "b", [("1" * 16, "one")])
    with pytest.raises(TrainError, match="'one' matches several videos"):
        data.match_videos([a, b], ["one"])
    with pytest.raises(TrainError, match="1 of 2 labelled videos are not in .*first 'zz'.*--skip-unmatched"):
        data.match_videos([a], ["one", "zz"])
    assert list(data.match_videos([a], ["one", "zz"], skip_unmatched=True)) == ["one"]
    with pytest.raises(TrainError, match="no `shots` table"):
        data.read_shot_frames(data.match_videos([a], ["one"]))


def test_progress_line_redraws_on_a_terminal_only():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = loop.Bar(2, stream)
        bar.step(1, 3, 3, 0.5)
        bar.epoch(1, "loss 0.5000 val f1 0.2500")
    assert "\repoch 1/2 [" in tty.getvalue() and "3/3 loss 0.5000" in tty.getvalue()
    assert pipe.getvalue() == "epoch 1/2 loss 0.5000 val f1 0.2500\n"


def test_cosine_schedule_ends_at_zero():
    assert loop.cosine_factor(0, 10) == 1.0
    assert loop.cosine_factor(5, 10) == pytest.approx(0.5)
    assert loop.cosine_factor(10, 10) == pytest.approx(0.0)


def test_prefetch_keeps_the_order():
    from reelbeam.train.scenes import prefetch

    for threads in (0, 1, 3):
        assert list(prefetch(lambda i: i * i, iter(range(20)), threads)) == [i * i for i in range(20)]
    assert list(prefetch(lambda i: i, iter([]), 2)) == []


def test_trainers_leave_torch_flags_as_they_found_them():
    import torch

    @loop.keeps_torch_flags
    def train():
        loop.deterministic("cuda")
        assert torch.are_deterministic_algorithms_enabled()

    before = torch.are_deterministic_algorithms_enabled()
    train()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_float16_cache_halves_the_file(tmp_path):
    a, rows = _output(tmp_path, "a", [("0" * 16, "one")])
    refs = data.match_videos([a], ["one"])
    cache = data.EmbeddingCache(refs, "frame_embeddings", "frame_idx", 512, None, str(tmp_path / "c16"), dtype="float16")
    try:
        assert cache.features.dtype == np.float16 and cache.features.nbytes == len(rows) * 512 * 2
        want = np.array([r["embedding"] for r in sorted(rows, key=lambda r: r["frame_idx"])], np.float32)
        np.testing.assert_allclose(cache.features[cache.rows["one"]].astype(np.float32), want, rtol=1e-3, atol=1e-3)
    finally:
        cache.close()
