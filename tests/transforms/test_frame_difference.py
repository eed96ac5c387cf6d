"""The frame-difference consumer: exact against its numpy reference, cuts spike, formats agree."""

import os

import av
import numpy as np
import pytest
import synthetic
from av.video.reformatter import VideoReformatter

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import FrameView, StreamInfo, decode_video
from reelbeam.transforms.frame_difference import (
    COARSE_COLUMNS,
    LAGS,
    SIGNALS,
    FrameDifferenceConsumer,
    coarse_grid,
    concat_chunks,
    correlation,
    grid_step,
    luma_grid_stats,
)

CUTS = (40, 70, 120)


def run_consumer(path, **kw):
    chunks = [
        v.payload
        for t, v in decode_video(VideoRef("v", path, os.path.getsize(path)), [FrameDifferenceConsumer(**kw)])
        if t == "per_video" and v.kind == "frame_difference"
    ]
    return concat_chunks(chunks)


def y_planes(path):
    with av.open(path) as c:
        out = []
        for f in c.decode(video=0):
            p = f.planes[0]
            out.append(np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: f.height, : f.width].copy())
    return out


@pytest.mark.parametrize("grid_width", [128, 48])
def test_signals_equal_the_numpy_reference(shot_video, grid_width):
    sig = run_consumer(shot_video, chunk=64, grid_width=grid_width)  # several chunks
    ys = y_planes(shot_video)
    assert sig["frame_idx"].tolist() == list(range(len(ys)))
    step = grid_step(ys[0].shape[1], ys[0].shape[0], grid_width)
    assert step == (1 if grid_width == 128 else 3)
    prev = ys[0][::step, ::step].copy()
    for t in range(1, len(ys)):
        d, mean, std, corr = luma_grid_stats(ys[t], step, prev)
        assert sig["diff_luma"][t] == pytest.approx(d, abs=1e-3)
        assert sig["luma_mean"][t] == pytest.approx(mean, abs=1e-3)
        assert sig["luma_std"][t] == pytest.approx(std, abs=1e-3)
        assert sig["luma_corr"][t] == pytest.approx(corr, abs=1e-5)
    grids = [y[::step, ::step] for y in ys]
    block = -(-grids[0].shape[1] // COARSE_COLUMNS)
    coarse = [coarse_grid(g, block) for g in grids]
    for k in LAGS:
        for t in range(len(ys)):
            want = correlation(coarse[t], coarse[t - k]) if t >= k else np.nan
            got = sig[f"corr_lag{k}"][t]
            assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-4), (k, t)


def test_cuts_spike_and_decorrelate(shot_video):
    sig = run_consumer(shot_video)
    content = sig["diff_luma"] + sig["diff_chroma"]
    inside = np.delete(content, [0, *CUTS])
    for c in CUTS:
        assert content[c] > 4 * np.median(inside), c
        assert sig["luma_corr"][c] < 0.7
        assert sig["corr_lag8"][c + 4] < 0.7  # frame c+4 against c-4: across the cut
    assert np.median(sig["luma_corr"][1:]) > 0.9


def _frames_as(fmt, imgs):
    for img in imgs:
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        yield f if fmt == "rgb24" else f.reformat(format=fmt)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "gray", "rgb24", "yuv420p10le"])
def test_every_pixel_format_sees_the_cut(fmt):
    imgs = [synthetic.scene_frame(1, t, 320, 180) for t in range(6)] + [synthetic.scene_frame(2, t, 320, 180) for t in range(6)]
    consumer = FrameDifferenceConsumer()
    consumer.start(StreamInfo("v", 320, 180, 1, 25.0, "raw"))
    view = FrameView(VideoReformatter())
    for i, f in enumerate(_frames_as(fmt, imgs)):
        view.reset(f, i, i, i / 25)
        list(consumer.consume(view))
    (_, (_, _, sig)), = list(consumer.finish())
    d = sig["diff_luma"] + sig["diff_chroma"]
    assert d[6] > 5 * max(d[1:6].max(), d[7:].max(), 0.5), (fmt, d)
    assert 0 < sig["luma_mean"][3] < 255
    assert set(sig) == {"frame_idx", *SIGNALS}


def test_a_change_of_frame_size_starts_over():
    consumer = FrameDifferenceConsumer()
    consumer.start(StreamInfo("v", 64, 48, 1, 25.0, "raw"))
    view = FrameView(VideoReformatter())
    for i, (w, h) in enumerate([(64, 48), (64, 48), (320, 240), (320, 240), (32, 16)]):
        view.reset(av.VideoFrame.from_ndarray(synthetic.scene_frame(i // 2, i, w, h), format="rgb24").reformat(format="yuv420p"), i, i, i)
        list(consumer.consume(view))
    (_, (_, _, sig)), = list(consumer.finish())
    assert len(sig["diff_luma"]) == 5 and np.isfinite(sig["diff_luma"]).all()


def test_grid_step_reads_about_the_grid_width():
    assert grid_step(1920, 1080) == 30
    assert grid_step(1920, 1080, 256) == 8
    assert grid_step(640, 360) == 10
    assert grid_step(160, 90) == 2
    assert grid_step(48, 27) == 1
    assert grid_step(1080, 1920) == 53  # portrait: the 16:9 width of its height


def test_grid_width_is_validated():
    with pytest.raises(ValueError, match="grid_width"):
        FrameDifferenceConsumer(grid_width=2)


def test_the_change_is_located_in_x_and_y():
    """A band that changes where a wipe's edge passes: the change's centre follows it, with a
    small spread; a change everywhere (a brightness step) is centred with the uniform spread."""
    from reelbeam.transforms.frame_difference import UNIFORM_SPREAD

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    imgs = [a.copy()]
    for k in range(1, 9):  # the right-hand shot covers the left 40 * k columns
        f = a.copy()
        f[:, : 40 * k] = b[:, : 40 * k]
        imgs.append(f)
    imgs.append(np.clip(b.astype(int) + 40, 0, 255).astype(np.uint8))  # then a brightness step
    consumer = FrameDifferenceConsumer()
    consumer.start(StreamInfo("v", 320, 180, 1, 25.0, "raw"))
    view = FrameView(VideoReformatter())
    for i, img in enumerate(imgs):
        view.reset(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"), i, i, i / 25)
        list(consumer.consume(view))
    (_, (_, _, sig)), = list(consumer.finish())
    assert sig["diff_x_centre"][0] == 0.5 and sig["diff_x_spread"][0] == pytest.approx(UNIFORM_SPREAD, abs=1e-4)
    for k in range(1, 9):
        assert sig["diff_x_centre"][k] == pytest.approx((40 * k - 20) / 320, abs=0.03)
        assert sig["diff_x_spread"][k] < 0.06
        assert sig["diff_y_centre"][k] == pytest.approx(0.5, abs=0.03)
        assert sig["diff_y_spread"][k] == pytest.approx(UNIFORM_SPREAD, abs=0.02)
    assert sig["diff_x_centre"][9] == pytest.approx(0.5, abs=0.03)
    assert sig["diff_x_spread"][9] == pytest.approx(UNIFORM_SPREAD, abs=0.02)
