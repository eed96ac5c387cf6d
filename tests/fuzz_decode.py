"""Fuzz harness for the demux/decode wrapper: mutated small videos must never crash the process
nor raise anything but a classified per-video error.

In the suite (tests/test_reliability.py) it runs for a bounded number of examples in a subprocess,
so that a crash inside FFmpeg shows up as a failed test rather than a dead test runner. Longer on
demand:

    .venv/bin/python tests/fuzz_decode.py --examples 20000 [--seed N]

Every input that made the wrapper misbehave is saved under tests/fuzz_regressions/ and replayed by
the suite from then on.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

REGRESSIONS = os.path.join(HERE, "fuzz_regressions")


def seed_videos(folder: str) -> list[bytes]:
    """Small valid inputs to mutate: H.264 in MP4 (moov first and last), MPEG-4 Part 2 in AVI, VP9 in WebM."""
    import synthetic

    out = []
    frames = list(synthetic.shot_frames([6, 6], 48, 32))
    specs = [
        ("a.mp4", {"codec": "libx264", "options": {"preset": "ultrafast", "bf": "2"}}),
        ("b.mp4", {"codec": "libx264", "container_options": {"movflags": "faststart"}}),
        ("c.avi", {"codec": "mpeg4"}),
        ("d.webm", {"codec": "libvpx-vp9", "options": {"deadline": "realtime"}}),
    ]
    for name, kwargs in specs:
        path = os.path.join(folder, name)
        synthetic.write_video(path, frames, **kwargs)
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def decode_bytes(data: bytes, suffix: str = ".mp4") -> str:
    """Run the real decode pass (frame index, TransNetV2 frames, LGSS, motion stats and maps,
    I-frames) on `data`; return 'ok' or the failure's error_type. Raises on anything unclassified."""
    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
    from reelbeam.transforms.failures import classify_error
    from reelbeam.transforms.motion import (
        IFrameConsumer,
        MotionMapConfig,
        MotionMapConsumer,
        MotionSampling,
        MotionStatsConsumer,
    )
    from reelbeam.transforms.shots import LGSSConsumer, TransNetV2WindowConsumer

    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as f:
        f.write(data)
        path = f.name
    try:
        consumers = [
            FrameIndexConsumer(),
            TransNetV2WindowConsumer(),
            LGSSConsumer(),
            MotionStatsConsumer(),
            MotionMapConsumer(MotionMapConfig(MotionSampling("all"))),
            IFrameConsumer(max_side=32),
        ]
        try:
            for _ in decode_video(VideoRef("fuzz", path, len(data)), consumers, DecodeConfig(timeout_s=20), True):
                pass
        except Exception as e:
            kind = classify_error(e)
            if kind == "internal_error":
                raise
            return kind
        return "ok"
    finally:
        os.unlink(path)


def save_regression(data: bytes) -> str:
    os.makedirs(REGRESSIONS, exist_ok=True)
    path = os.path.join(REGRESSIONS, hashlib.sha1(data).hexdigest()[:16] + ".bin")
    with open(path, "wb") as f:
        f.write(data)
    return path


def run(examples: int, seed: int) -> dict:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    folder = tempfile.mkdtemp()
    seeds = seed_videos(folder)
    outcomes: dict[str, int] = {}

    mutation = st.one_of(
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=40)),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("splice"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=256))),
        st.tuples(st.just("zero_run"), st.tuples(st.floats(0, 1), st.integers(1, 4096))),
    )

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(seeds) - 1), st.lists(mutation, min_size=1, max_size=4))
    def fuzz(which, mutations):
        data = bytearray(seeds[which])
        for kind, arg in mutations:
            if not data:
                break
            if kind == "flip":
                for pos, value in arg:
                    data[int(pos * len(data))] = value
            elif kind == "truncate":
                data = data[: int(arg * len(data))]
            elif kind == "splice":
                pos, junk = arg
                i = int(pos * len(data))
                data[i:i] = junk
            elif kind == "zero_run":
                pos, n = arg
                i = int(pos * len(data))
                data[i : i + n] = bytes(min(n, len(data) - i))
        try:
            kind = decode_bytes(bytes(data), (".mp4", ".mp4", ".avi", ".webm")[which])
        except Exception:
            print(f"unclassified error; input saved to {save_regression(bytes(data))}", file=sys.stderr)
            raise
        outcomes[kind] = outcomes.get(kind, 0) + 1

    fuzz()
    return outcomes


def replay_regressions() -> dict:
    outcomes: dict[str, int] = {}
    if not os.path.isdir(REGRESSIONS):
        return outcomes
    for name in sorted(os.listdir(REGRESSIONS)):
        with open(os.path.join(REGRESSIONS, name), "rb") as f:
            kind = decode_bytes(f.read())
        outcomes[kind] = outcomes.get(kind, 0) + 1
    return outcomes


def main(argv=None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = {"regressions": replay_regressions(), "fuzz": run(args.examples, args.seed)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
