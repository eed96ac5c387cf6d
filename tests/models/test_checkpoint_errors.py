"""Every unreadable, truncated, wrong-format or wrong-architecture checkpoint gives one line naming
the flag and the file and what is wrong, ending with where to get the right file, exit status 2,
and no output folder (issue: a text file raised `KeyError: 101`, random bytes were called code,
the output was made first)."""

import os
import zipfile

import pytest
import synthetic
import torch

from reelbeam.pipelines.cli import main

FLAGS = ("--scene-checkpoint", "--scrl-checkpoint", "--cmd-checkpoint", "--transnetv2-weights")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    files = {}
    files["text"] = root / "notes.pt"
    files["text"].write_text("these are not weights\n" * 20)
    files["random"] = root / "random.pt"
    files["random"].write_bytes(os.urandom(8192))
    files["empty"] = root / "empty.pt"
    files["empty"].write_bytes(b"")
    whole = root / "whole.pt"
    torch.save({"layer.weight": torch.zeros(64, 64), "layer.bias": torch.zeros(64)}, whole)
    files["truncated"] = root / "truncated.pt"
    files["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    files["wrong_architecture"] = whole
    files["zip_not_torch"] = root / "archive.pt"
    with zipfile.ZipFile(files["zip_not_torch"], "w") as z:
        z.writestr("readme.txt", "a zip file, not a torch checkpoint")
    files["missing"] = root / "no_such_file.pt"
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return synthetic.make_shot_video(str(tmp_path_factory.mktemp("v") / "a.mp4"), (20, 20))


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("kind", ["text", "random", "empty", "truncated", "wrong_architecture", "zip_not_torch", "missing"])
def test_a_bad_checkpoint_is_one_line_exit_2_and_no_output(bad_files, video, tmp_path, capsys, flag, kind):
    out = tmp_path / "out"
    code = main(["run", "--input", video, "--output", str(out), flag, bad_files[kind]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"reelbeam: error: {flag}"), err
    assert os.path.basename(bad_files[kind]) in err[0]
    assert "Traceback" not in err[0] and "KeyError" not in err[0]
    assert err[0].endswith("; see docs/weights.md"), err[0]  # where the right file comes from
    if kind in ("random", "truncated", "zip_not_torch", "empty"):
        assert "code" not in err[0], err[0]  # a corrupt file is not reported as a code payload
    assert not out.exists()


def test_key_problems_is_one_line_for_every_model_and_names_a_dataparallel_state():
    from reelbeam.models.checkpoints import key_problems

    expected = {"a.weight": (2, 3), "b.weight": (4,), "head.bias": (1,)}
    assert key_problems(dict(expected), expected) is None
    assert key_problems({"a.weight": (2, 3), "b.weight": (4,)}, expected, optional=("head.",)) is None
    assert key_problems({"a.weight": (3, 3), "b.weight": (4,), "head.bias": (1,)}, expected) == \
        "1 with other shapes (e.g. a.weight: (3, 3) instead of (2, 3))"
    wrapped = key_problems({f"module.{k}": v for k, v in expected.items()}, expected)
    assert wrapped.startswith("3 missing (e.g. a.weight, b.weight, head.bias); 3 unexpected (e.g. module.a.weight")
    assert wrapped.endswith("keys start with 'module.': a DataParallel training state, not the published file")
    assert "\n" not in wrapped
