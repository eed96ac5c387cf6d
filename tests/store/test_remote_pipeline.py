"""The whole pipeline on gs:// and s3:// for real (local emulators, tests/remote_storage.py): a run
reading its video from the bucket and writing Delta tables there, a resume that has nothing left to
do, a second writer refused while the lease is held, and the tables read back."""

import os
import subprocess
import sys

import pytest
import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGS = ["--shot-detector", "lgss", "--scenes", "histogram", "--direct_running_mode=in_memory"]


def cli(emulator, *args):
    env = {**os.environ, **emulator.env, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "reelbeam", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return synthetic.make_shot_video(str(tmp_path_factory.mktemp("remote") / "clip.mp4"), (12, 10), width=64, height=48)


@pytest.mark.parametrize("backend", ["gcs_emulator", "s3_emulator"])
def test_a_run_resume_refusal_and_read_on_a_bucket(request, backend, video):
    import reelbeam
    from reelbeam.store import lease

    emulator = request.getfixturevalue(backend)
    fs = emulator.fs()
    source = emulator.url(f"{backend}-in/clip.mp4")
    fs.put(video, source)
    out = emulator.url(f"{backend}-out")
    proc = cli(emulator, "run", "--input", source, "--output", out, *FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 video ok, 0 failed" in proc.stdout
    resumed = cli(emulator, "run", "--input", source, "--output", out, *FLAGS, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "nothing new: everything asked for was done before" in resumed.stdout
    with emulator.environ():
        held = lease.acquire(out, "20261207T000000Z-beef", storage_options=emulator.fsspec_options)
        try:
            refused = cli(emulator, "run", "--input", source, "--output", out, *FLAGS, "--skip-existing")
        finally:
            held.release()
        assert refused.returncode == 3, refused.stderr[-3000:]
        assert "is in use by run 20261207T000000Z-beef" in refused.stderr.strip().splitlines()[-1]
        videos = reelbeam.read(out, "videos", ["uri", "status"]).to_pylist()
        shots = reelbeam.read(out, "shots", ["shot_idx", "start_frame"]).to_pylist()
    assert videos == [{"uri": source, "status": "ok"}]
    assert sorted(s["start_frame"] for s in shots) == [0, 12]
