import os

import numpy as np
import pytest
import synthetic
from synthetic import pan_frames

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
from reelbeam.transforms.motion import (
    IFrameConsumer,
    MotionMapConfig,
    MotionMapConsumer,
    MotionSampling,
    MotionStatsConsumer,
    decode_map,
    encode_map,
    motion_map,
    motion_stats,
    motion_stats_numpy,
)


@pytest.fixture(params=["compiled", "numpy"])
def stats_fn(request):
    """Both implementations of the per-frame statistics must satisfy every stats test."""
    return motion_stats if request.param == "compiled" else motion_stats_numpy

MV_DTYPE = np.dtype(
    [("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"), ("dst_x", "<i2"),
     ("dst_y", "<i2"), ("flags", "<u8"), ("motion_x", "<i4"), ("motion_y", "<i4"), ("motion_scale", "<u2")]
)


def vectors(rows):
    """rows of (source, w, h, dst_x, dst_y, forward_dx, forward_dy) -> AVMotionVector array."""
    out = np.zeros(len(rows), MV_DTYPE)
    for i, (source, w, h, x, y, dx, dy) in enumerate(rows):
        sign = -1 if source < 0 else 1  # motion = src - dst; forward = dst - src for past refs
        mx, my = sign * dx, sign * dy  # src = dst + motion
        out[i] = (source, w, h, x + mx, y + my, x, y, 0, int(mx * 4), int(my * 4), 4)
    return out


def test_motion_map_paints_blocks_on_the_grid():
    v = vectors([(-1, 16, 16, 8, 8, 3.0, -2.0), (-1, 8, 8, 20, 4, 4.0, 0.0), (-1, 8, 8, 28, 4, 0.0, 0.0)])
    m = motion_map(v, 48, 32)
    assert m.shape == (2, 2, 3)
    assert m[:, 0, 0].tolist() == [3.0, -2.0]
    # Cell (0, 1) holds two 8x8 blocks out of four: area-weighted mean of 4 and 0.
    assert m[0, 0, 1] == pytest.approx(2.0)
    assert m[:, 1, :].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_future_references_are_turned_forward(stats_fn):
    past = stats_fn(vectors([(-1, 16, 16, 8, 8, 5.0, 0.0)]), 16, 16)
    future = stats_fn(vectors([(1, 16, 16, 8, 8, 5.0, 0.0)]), 16, 16)
    assert past["mv_mean_dx"] == future["mv_mean_dx"] == 5.0
    assert past["mv_direction_hist"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]


def test_stats_of_a_frame_without_vectors(stats_fn):
    s = stats_fn(None, 64, 48)
    assert s["mv_count"] == 0 and np.isnan(s["mv_mean_mag"]) and s["mv_moving_fraction"] == 0.0


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_map_encoding_clamps_scales_and_round_trips(dtype):
    m = np.array([[[25.0, -5.0]], [[0.0, -30.0]]], np.float32)
    data = encode_map(m, None, dtype)
    back = decode_map(data.tobytes(), 1, 2, dtype)
    np.testing.assert_allclose(back, [[[1.0, -0.5]], [[0.0, -1.0]]], atol=0.01)


def test_map_resize_keeps_values():
    m = np.full((2, 4, 6), 5.0, np.float32)
    out = encode_map(m, (112, 112), "float16")
    assert out.shape == (2, 112, 112)
    np.testing.assert_allclose(out.astype(np.float32), 0.5, atol=1e-3)


@pytest.mark.parametrize("spec, expected", [("off", ("off", 0)), ("all", ("all", 0)), ("every:5", ("every", 5)), ("fps:2.5", ("fps", 2.5))])
def test_sampling_parse(spec, expected):
    s = MotionSampling.parse(spec)
    assert (s.mode, s.value) == expected


@pytest.mark.parametrize("spec", ["sometimes", "every:0", "every:1.5", "fps:-1", "fps:x"])
def test_sampling_parse_rejects(spec):
    with pytest.raises(ValueError, match="every:N"):
        MotionSampling.parse(spec)


def test_config_validates():
    with pytest.raises(ValueError, match="dtype"):
        MotionMapConfig(dtype="int16")


# -------------------------------------------------------------------------------------------------
# On real encodes: a pan by a known number of pixels per frame, a static shot, a VP9 file.


def decode_with(path, consumers, config=DecodeConfig()):
    ref = VideoRef("v", path, os.path.getsize(path))
    return list(decode_video(ref, [FrameIndexConsumer(), *consumers], config, motion_vectors=True))


def stats_of(outs):
    chunks = [v.payload for t, v in outs if t == "per_video" and v.kind == "motion_stats"]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def meta_of(outs):
    return next(v.payload for t, v in outs if t == "per_video" and v.kind == "meta")


@pytest.mark.parametrize("codec, step", [("libx264", 4), ("libx264", 8), ("mpeg4", 4)])
def test_pan_yields_its_speed(video_dir, codec, step):
    path = str(video_dir / f"pan_{codec}_{step}.mp4")
    synthetic.write_video(path, pan_frames(20, step), codec=codec)
    outs = decode_with(path, [MotionStatsConsumer()])
    stats = stats_of(outs)
    p = stats["mv_count"] > 0
    # Content moves left by `step` pixels per frame: forward motion (-step, 0).
    assert np.nanmedian(stats["mv_mean_dx"][p]) == pytest.approx(-step, abs=1.0)
    assert np.nanmedian(stats["mv_mean_mag"][p]) == pytest.approx(step, abs=1.0)
    assert np.median(stats["mv_moving_fraction"][p]) > 0.7
    # Most moving blocks point left: sector 4 of the histogram.
    assert stats["mv_direction_hist"][p].sum(0).argmax() == 4
    assert meta_of(outs)["motion_vectors"] == "available"


def test_static_shot_has_no_motion(video_dir):
    path = str(video_dir / "static.mp4")
    frame = next(pan_frames(1, 0))
    synthetic.write_video(path, [frame] * 15)
    stats = stats_of(decode_with(path, [MotionStatsConsumer()]))
    p = stats["mv_count"] > 0
    assert np.nanmax(stats["mv_mean_mag"][p]) < 0.1
    assert stats["mv_moving_fraction"].max() < 0.05


def test_vp9_has_no_vectors_and_is_no_error(video_dir):
    path = str(video_dir / "pan.webm")
    synthetic.write_video(path, pan_frames(10, 4), codec="libvpx-vp9", options={"deadline": "realtime"})
    outs = decode_with(path, [MotionStatsConsumer(), MotionMapConsumer(MotionMapConfig(MotionSampling("all")))])
    assert meta_of(outs)["motion_vectors"] == "unavailable"
    assert not [o for o in outs if o[0] == "motion" or (o[0] == "per_video" and o[1].kind == "motion_stats")]


def test_motion_maps_of_a_pan(video_dir):
    path = str(video_dir / "pan_maps.mp4")
    synthetic.write_video(path, pan_frames(12, 4), codec="libx264")
    outs = decode_with(path, [MotionMapConsumer(MotionMapConfig(MotionSampling("every", 2), None, "float16"))])
    rows = [v for t, v in outs if t == "motion"]
    assert [r["frame_idx"] for r in rows] == [2, 4, 6, 8, 10]  # frame 0 is an I-frame
    r = rows[1]
    assert (r["grid_height"], r["grid_width"]) == (7, 12)
    m = decode_map(r["data"], r["grid_height"], r["grid_width"], r["dtype"])
    assert np.median(m[0]) == pytest.approx(-0.4, abs=0.1)  # -4 px / 10
    assert np.median(np.abs(m[1])) < 0.05


def test_iframes_as_jpeg_and_keyframes_only_decode(video_dir):
    import io

    from PIL import Image

    path = str(video_dir / "gop.mp4")
    synthetic.write_video(path, synthetic.shot_frames([50], 160, 90), gop=10, options={"preset": "ultrafast", "keyint_min": "10", "sc_threshold": "0"})
    full = [v for t, v in decode_with(path, [IFrameConsumer(max_side=80)]) if t == "keyframes"]
    assert [r["frame_idx"] for r in full] == [0, 10, 20, 30, 40]
    img = Image.open(io.BytesIO(full[1]["jpeg"]))
    assert img.size == (80, 45) == (full[1]["width"], full[1]["height"])
    fast = decode_with(path, [IFrameConsumer(max_side=80)], DecodeConfig(keyframes_only=True))
    rows = [v for t, v in fast if t == "keyframes"]
    assert [r["frame_idx"] for r in rows] == [0, 10, 20, 30, 40]
    assert [r["pts_time"] for r in rows] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    meta = meta_of(fast)
    assert meta["keyframes_only"] and meta["frame_count"] == 5


def test_a_bi_predicted_block_counts_once_in_the_moving_area(stats_fn):
    both = vectors([(1, 16, 16, 8, 8, 1.0, 0.0), (-1, 16, 16, 8, 8, 1.0, 0.0), (-1, 16, 16, 24, 8, 0.0, 0.0)])
    assert stats_fn(both, 32, 16)["mv_moving_fraction"] == pytest.approx(0.5)
    still = vectors([(1, 16, 16, 8, 8, 0.0, 0.0), (-1, 16, 16, 8, 8, 0.0, 0.0)])
    assert stats_fn(still, 16, 16)["mv_moving_fraction"] == 0.0


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_compiled_stats_equal_the_numpy_ones_on_real_vectors(video_dir, codec):
    import av

    from reelbeam.transforms.sidedata import motion_vectors

    path = synthetic.write_video(str(video_dir / f"pan_eq_{codec}.mp4"), pan_frames(30, 3, 320, 176), codec=codec, options={"bf": "2"} if codec == "libx264" else None)
    frames = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"flags2": "+export_mvs"}
        for f in c.decode(s):
            v = motion_vectors(f)
            if v is None:
                continue
            frames += 1
            a, b = motion_stats(v, 320, 176), motion_stats_numpy(v, 320, 176)
            for k in a:
                assert np.allclose(a[k], b[k], rtol=1e-5, atol=1e-5, equal_nan=True), (f.index, k, a[k], b[k])
    assert frames >= 25
