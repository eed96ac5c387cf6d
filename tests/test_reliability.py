"""Hostile and broken inputs: the bad-input corpus, crash-safe restarts, safe paths, fuzzing."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import synthetic

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
from reelbeam.transforms.failures import classify_error

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _patch_mdhd_duration(path: str, factor: int) -> None:
    """Multiply the media header's declared duration (version 0 boxes) by `factor`."""
    data = bytearray(open(path, "rb").read())
    for box in (b"mdhd", b"mvhd"):
        i = data.find(box)
        assert i > 0 and data[i + 4] == 0, "expected a version-0 box"
        at = i + 4 + 4 + 4 + 4 + 4  # version/flags, creation, modification, timescale
        duration = int.from_bytes(data[at : at + 4], "big")
        data[at : at + 4] = (duration * factor).to_bytes(4, "big")
    open(path, "wb").write(bytes(data))


def build_corpus(root):
    """The bad-input corpus: name -> expected outcome ('ok', 'ok+warning' or a failure error_type)."""
    root = str(root)
    os.makedirs(root, exist_ok=True)
    expected = {}
    good = synthetic.make_shot_video(os.path.join(root, "good.mp4"), (20, 20))
    expected["good.mp4"] = "ok"
    for name, error in synthetic.bad_inputs(os.path.join(root, "bad"), good).items():
        expected[f"bad/{name}"] = error

    # An unfinalised recording: mdat written, the moov index never was.
    data = open(good, "rb").read()
    moov = data.find(b"moov") - 4
    open(os.path.join(root, "no_moov.mp4"), "wb").write(data[:moov])
    expected["no_moov.mp4"] = "invalid_data"
    # moov first (faststart), then cut at several points: what is there decodes, with a warning.
    faststart = synthetic.make_shot_video(os.path.join(root, "_faststart.mp4"), (30, 30), container_options={"movflags": "faststart"})
    fdata = open(faststart, "rb").read()
    os.remove(faststart)
    mdat = fdata.find(b"mdat")
    for pct in (60, 90):
        cut = mdat + (len(fdata) - mdat) * pct // 100
        open(os.path.join(root, f"truncated_{pct}.mp4"), "wb").write(fdata[:cut])
        expected[f"truncated_{pct}.mp4"] = "ok+warning"
    open(os.path.join(root, "truncated_header.mp4"), "wb").write(fdata[: mdat // 2])
    expected["truncated_header.mp4"] = "truncated"  # cut inside the moov index

    synthetic.make_shot_video(os.path.join(root, "one_frame.mp4"), (1,))
    expected["one_frame.mp4"] = "ok"
    synthetic.make_shot_video(os.path.join(root, "two_frames.mp4"), (2,))
    expected["two_frames.mp4"] = "ok"
    import fractions

    synthetic.write_video(
        os.path.join(root, "vfr_gaps.mkv"),
        synthetic.shot_frames([8], 64, 48),
        pts=[0, 40, 80, 1000, 1040, 3000, 3040, 3080],
        time_base=fractions.Fraction(1, 1000),
    )
    expected["vfr_gaps.mkv"] = "ok"
    for rot in (90, 180, 270):
        synthetic.write_video(os.path.join(root, f"rot{rot}.mp4"), synthetic.shot_frames([5], 64, 48), rotation=rot)
        expected[f"rot{rot}.mp4"] = "ok"
    synthetic.write_video(os.path.join(root, "odd_161x91.mp4"), synthetic.shot_frames([5], 161, 91), pix_fmt="yuv444p")
    expected["odd_161x91.mp4"] = "ok"
    synthetic.write_video(os.path.join(root, "10bit.mp4"), synthetic.shot_frames([5], 64, 48), pix_fmt="yuv420p10le")
    expected["10bit.mp4"] = "ok"
    synthetic.write_video(
        os.path.join(root, "interlaced.mp4"), synthetic.shot_frames([6], 64, 48),
        options={"preset": "ultrafast", "x264-params": "interlaced=1:tff=1"},
    )
    expected["interlaced.mp4"] = "ok"
    synthetic.write_video(os.path.join(root, "hevc.mp4"), synthetic.shot_frames([5], 64, 48), codec="libx265", options={"x265-params": "log-level=error"})
    expected["hevc.mp4"] = "ok"
    synthetic.write_video(os.path.join(root, "vp9.webm"), synthetic.shot_frames([5], 64, 48), codec="libvpx-vp9", options={"deadline": "realtime"})
    expected["vp9.webm"] = "ok"
    synthetic.write_video(os.path.join(root, "av1.mkv"), synthetic.shot_frames([5], 64, 48), codec="libsvtav1")
    expected["av1.mkv"] = AV1_OUTCOME
    # 8K UHD, 2 frames: at the default frame-size limit, processed (a lower limit refuses it).
    big = np.zeros((4320, 7680, 3), np.uint8)
    big[::64] = 255
    synthetic.write_video(os.path.join(root, "uhd8k.mp4"), [big, big[:, ::-1].copy()])
    expected["uhd8k.mp4"] = "ok"
    wrong = synthetic.make_shot_video(os.path.join(root, "wrong_duration.mp4"), (10, 10))
    _patch_mdhd_duration(wrong, 7)
    expected["wrong_duration.mp4"] = "ok"
    synthetic.make_shot_video(os.path.join(root, "vidéo ünïcode 日本 with spaces.mp4"), (10,))
    expected["vidéo ünïcode 日本 with spaces.mp4"] = "ok"
    return expected


def _software_av1_decoder() -> bool:
    import av

    return any(name in av.codecs_available for name in ("libdav1d", "libaom-av1"))


# FFmpeg's native AV1 decoder needs hardware acceleration; PyAV wheels without dav1d cannot decode AV1.
AV1_OUTCOME = "ok" if _software_av1_decoder() else "unsupported_codec"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, build_corpus(root)


def outcome(path):
    ref = VideoRef("x", path, os.path.getsize(path))
    try:
        outs = list(decode_video(ref, [FrameIndexConsumer()], DecodeConfig()))
    except Exception as e:  # noqa: BLE001
        return classify_error(e), None
    meta = next(v.payload for t, v in outs if t == "per_video" and v.kind == "meta")
    return ("ok+warning" if meta["warnings"] else "ok"), meta


def test_every_case_has_its_expected_outcome(corpus):
    root, expected = corpus
    got = {name: outcome(str(root / name))[0] for name in expected}
    # A clean file may carry a benign warning (e.g. a declared count that differs): 'ok' accepts both.
    normalised = {n: ("ok" if expected[n] == "ok" and g == "ok+warning" else g) for n, g in got.items()}
    assert normalised == expected


def test_metadata_of_the_odd_cases(corpus):
    root, _ = corpus
    _, vfr = outcome(str(root / "vfr_gaps.mkv"))
    assert vfr["duration_s"] == pytest.approx(3.12, abs=0.05)
    _, wrong = outcome(str(root / "wrong_duration.mp4"))
    assert wrong["duration_s"] == pytest.approx(20 / 25)  # from PTS, not from the lying header
    _, cut = outcome(str(root / "truncated_60.mp4"))
    assert 0 < cut["frame_count"] < 60 and any("declares" in w for w in cut["warnings"])
    _, rot = outcome(str(root / "rot270.mp4"))
    assert rot["rotation"] == 270
    _, big = outcome(str(root / "uhd8k.mp4"))
    assert (big["width"], big["height"], big["frame_count"]) == (7680, 4320, 2)


def test_a_lower_frame_size_limit_refuses_8k(corpus):
    root, _ = corpus
    path = str(root / "uhd8k.mp4")
    with pytest.raises(Exception) as e:
        list(decode_video(VideoRef("x", path, 1), [FrameIndexConsumer()], DecodeConfig(max_frame_pixels=3840 * 2160)))
    assert classify_error(e.value) == "frame_too_large"


def reelbeam(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "reelbeam", *args], capture_output=True, text=True, env=ENV, **kwargs)


def test_whole_corpus_through_the_cli_accounts_for_every_file(corpus, tmp_path):
    root, expected = corpus
    out = tmp_path / "out"
    proc = reelbeam("run", "--input", str(root), "--output", str(out), "--shot-detector", "lgss", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    videos = pq.read_table(out / "videos").to_pylist()
    failures = pq.read_table(out / "failures").to_pylist()
    listed = {os.path.relpath(v["uri"], root) for v in videos} | {os.path.relpath(f["uri"], root) for f in failures}
    # The folder listing takes video extensions only: bad/still_image.mp4 etc. are all .mp4/.mkv.
    assert listed == set(expected)
    assert {os.path.relpath(f["uri"], root): f["error_type"] for f in failures} == {
        n: e for n, e in expected.items() if not e.startswith("ok")
    }
    assert len(videos) == sum(e.startswith("ok") for e in expected.values())


# -------------------------------------------------------------------------------------------------
# Crash-safe restarts


def _corpus_of(root, n):
    for i in range(n):
        synthetic.make_shot_video(str(root / f"v{i:02d}.mp4"), (20, 15), seed=i + 10)


def _visible_parquet(out):
    return sorted(p for p in out.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(out).parts))


def test_sigkill_then_skip_existing_gives_every_row_exactly_once(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _corpus_of(corpus, 6)
    out = tmp_path / "out"
    first = sorted(corpus.glob("v0[0-2].mp4"))
    manifest = tmp_path / "first.txt"
    manifest.write_text("".join(f"{p}\n" for p in first))
    # Run 1 completes on 3 videos.
    proc = reelbeam("run", "--input", str(manifest), "--output", str(out), "--shot-detector", "lgss", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Run 2 over all 6 is killed mid-way (its whole process group, workers included).
    killed = subprocess.Popen(
        [sys.executable, "-m", "reelbeam", "run", "--input", str(corpus), "--output", str(out), "--skip-existing",
         "--shot-detector", "lgss", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    time.sleep(6)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    # Readers see committed rows only: the 3 videos of run 1, and whatever run 2 had committed whole.
    committed = reelbeam_read(out, "videos")
    assert len(committed) >= 3 and committed.video_id.is_unique
    # Run 3 resumes and finishes.
    proc = reelbeam("run", "--input", str(corpus), "--output", str(out), "--skip-existing", "--shot-detector", "lgss", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos = reelbeam_read(out, "videos")
    assert sorted(os.path.basename(u) for u in videos.uri) == [f"v{i:02d}.mp4" for i in range(6)]
    assert videos.video_id.is_unique
    frames = reelbeam_read(out, "frames", ["video_id", "frame_idx"])
    assert len(frames) == 6 * 35 and not frames.duplicated().any()
    shots = reelbeam_read(out, "shots")
    assert not shots.duplicated(["video_id", "shot_idx"]).any()
    assert set(shots.video_id) == set(videos.video_id)


def reelbeam_read(out, table, columns=None):
    from reelbeam import read

    return read(str(out), table, columns).to_pandas()


# -------------------------------------------------------------------------------------------------
# Safe paths and no shell


def test_names_with_dot_dot_cannot_place_files_outside_the_output(tmp_path):
    corpus = tmp_path / "corpus" / "inner"
    corpus.mkdir(parents=True)
    synthetic.make_shot_video(str(tmp_path / "corpus" / "..evil...mp4"), (10,))
    manifest = corpus / "list.txt"
    manifest.write_text("../..evil...mp4\n../inner/../..evil...mp4\n")
    out = tmp_path / "out"
    proc = reelbeam("run", "--input", str(manifest), "--output", str(out), "--shot-detector", "none", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    written = {p for p in before if out in p.parents}
    outside = before - written - {p for p in before if (tmp_path / "corpus") in p.parents}
    assert not outside, outside
    for p in (out / "json").glob("*"):
        assert re.fullmatch(r"[0-9a-f]{16}\.json", p.name)


def test_the_package_never_builds_shell_commands():
    pkg = os.path.join(os.path.dirname(HERE), "reelbeam")
    for dirpath, _, files in os.walk(pkg):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                assert not re.search(r"\bsubprocess\b|os\.system|os\.popen|shell=True", text), name


# -------------------------------------------------------------------------------------------------
# Fuzzing (bounded here; `python tests/fuzz_decode.py --examples N` runs longer)


def test_fuzzed_videos_never_crash_the_decoder():
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "fuzz_decode.py"), "--examples", "400", "--seed", "1"],
        capture_output=True, text=True, env=ENV, timeout=900,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(result["fuzz"].values()) >= 300
    assert set(result["regressions"]) <= {"ok", "no_frames", "invalid_data", "decode_error", "truncated", "unsupported_codec"}
