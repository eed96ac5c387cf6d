import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "samples", "sintel_trailer_30s.mp4")

# Shots of the standard test video, and where its cuts are.
SHOTS = (40, 30, 50, 30)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def shot_video(video_dir):
    """150 frames at 25 fps, 160x90 H.264, cuts at frames 40, 70 and 120."""
    return synthetic.make_shot_video(str(video_dir / "shots.mp4"), SHOTS)


@pytest.fixture(scope="session")
def short_video(video_dir):
    """30 frames, one shot, 64x48."""
    return synthetic.make_shot_video(str(video_dir / "short.mp4"), (30,), width=64, height=48)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)
    if any("native_bf16" in item.keywords for item in items):
        from reelbeam.models.device import BF16_EMULATED, native_bf16

        if not native_bf16():
            # What these tests check about the bf16 path is checked in fp32 or int8 too (the same
            # test with another precision, or the parity test of the same model).
            emulated = pytest.mark.skip(reason=BF16_EMULATED)
            for item in items:
                if "native_bf16" in item.keywords:
                    item.add_marker(emulated)


@pytest.fixture(scope="session")
def pipeline_output(tmp_path_factory):
    """A pipeline run (in-process) over 2 synthetic videos, one of them 176x144 with sample
    aspect ratio 16:11, and a broken file; with shot keyframes and I-frames. Read-only: tests
    that change it work on a copy."""
    import outputs

    return outputs.make_run(str(tmp_path_factory.mktemp("run")))


@pytest.fixture(scope="session")
def full_output(pipeline_output, tmp_path_factory):
    """`pipeline_output` plus every optional table (fabricated with its schema) and a run
    manifest; returns (output folder, facts from outputs.add_optional_tables)."""
    import shutil

    import outputs

    out = str(tmp_path_factory.mktemp("full") / "out")
    shutil.copytree(pipeline_output, out)
    return out, outputs.add_optional_tables(out)


# gs:// and s3:// emulators (session fixtures, started on first use): tests/remote_storage.py.
from remote_storage import gcs_emulator, s3_emulator  # noqa: F401
