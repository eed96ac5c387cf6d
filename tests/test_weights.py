"""`reelbeam weights check PATH...`: one line per PATH in order (architecture, tensors, sha256 and
the flag on stdout; the problem on stderr, pointing to docs/weights.md), exit status 0 only when
every PATH was recognised; local files, folders, fsspec URLs and cached Hugging Face ids."""

import hashlib
import os

import fsspec
import layouts
import pytest
from tiny_clip import save_tiny_clip

from reelbeam.pipelines.cli import main


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return {
        "cmd": layouts.save_cmd(str(root / "pytorch_model.pt")),
        "clipit": layouts.save_clipit(str(root / "clipit.pt")),
        "clip": save_tiny_clip(str(root / "tiny-clip")),
    }


def test_recognised_files_print_architecture_tensors_sha256_and_flag(checkpoints, capsys):
    code = main(["weights", "check", checkpoints["cmd"], checkpoints["clipit"], checkpoints["clip"]])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    cmd, clipit, clip = out.splitlines()
    assert cmd == (f"{checkpoints['cmd']}: CMD R(2+1)D-26 video embedding, 228 tensors, "
                   f"sha256 {digest(checkpoints['cmd'])} (for --cmd-checkpoint)")
    assert clipit.startswith(f"{checkpoints['clipit']}: CLIP-It scoring transformer, ")
    assert clipit.endswith(f"sha256 {digest(checkpoints['clipit'])} (for --clipit-checkpoint)")
    weights = os.path.join(checkpoints["clip"], "model.safetensors")
    assert clip.startswith(f"{checkpoints['clip']}: CLIP (ViT 2x32, 32-px patches, 512-d features), ")
    assert clip.endswith(f"sha256 of model.safetensors {digest(weights)} (for --clip-model)")


def test_bad_and_missing_paths_are_one_line_each_and_exit_2(checkpoints, tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n" * 10)
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    paths = [str(text), checkpoints["cmd"], str(tmp_path / "missing.pt"), str(empty), "gs-less/no-such-clip"]
    code = main(["weights", "check", *paths])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.splitlines() == [out.splitlines()[0]] and out.startswith(f"{checkpoints['cmd']}: CMD")
    lines = err.splitlines()
    assert len(lines) == 4 and all(
        line.startswith("reelbeam weights check: error: ") and line.endswith("; see docs/weights.md") for line in lines
    )
    assert f"{text}: not a PyTorch checkpoint (a text file" in lines[0]
    assert f"{tmp_path / 'missing.pt'}: no such file or folder" in lines[1]
    assert f"{empty}: a folder with neither config.json and CLIP weights nor pytorch_model.pt" in lines[2]
    assert "'gs-less/no-such-clip' is not in the local Hugging Face cache" in lines[3]


def test_urls_and_cached_hugging_face_ids(checkpoints, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    fs = fsspec.filesystem("memory")
    for name in os.listdir(checkpoints["clip"]):
        fs.put_file(os.path.join(checkpoints["clip"], name), f"/weights-check/tiny-clip/{name}")
    fs.put_file(checkpoints["cmd"], "/weights-check/cmd/pytorch_model.pt")
    # A Hugging Face cache holding one model, as `hf download` leaves it.
    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-clip" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--tiny-org--tiny-clip" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny-org--tiny-clip" / "refs" / "main").write_text("0123abcd")
    for name in os.listdir(checkpoints["clip"]):
        os.link(os.path.join(checkpoints["clip"], name), snapshot / name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    code = main(["weights", "check", "memory://weights-check/tiny-clip", "memory://weights-check/cmd",
                 "tiny-org/tiny-clip"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    url, folder, cached = out.splitlines()
    clip_digest = digest(os.path.join(checkpoints["clip"], "model.safetensors"))
    assert url.startswith("memory://weights-check/tiny-clip: CLIP") and clip_digest in url
    assert folder.startswith("memory://weights-check/cmd: CMD") and digest(checkpoints["cmd"]) in folder
    assert cached.startswith("tiny-org/tiny-clip: CLIP") and clip_digest in cached


def test_usage(capsys):
    assert main(["weights"]) == 2
    assert main(["weights", "check"]) == 2
    assert "the following arguments are required: PATH" in capsys.readouterr().err
    assert main(["weights", "check", "--help"]) == 0
    assert "usage: reelbeam weights check [-h] PATH" in capsys.readouterr().out


def test_the_page_every_message_points_to_covers_every_model():
    from reelbeam.models import clip
    from reelbeam.models.checkpoints import WEIGHTS_HELP
    from reelbeam.models.recognition import MODELS

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, WEIGHTS_HELP.removeprefix("see ")), encoding="utf-8") as f:
        page = f.read()
    flags = [make().flag for make in MODELS if make().flag] + ["--clip-model"]
    assert all(f"`{flag}`" in page for flag in flags), flags
    for source in ("damo/cv_resnet50-bert_video-scene-segmentation_movienet", "damo/cv_r2p1d_video_embedding",
                   "damo/cv_clip-it_video-summarization_language-guided_en", "TencentYoutuResearch/SceneSegmentation-SCRL",
                   "kakaobrain/bassl", clip.DEFAULT_CLIP_MODEL):
        assert f"`{source}`" in page, source
    assert f"has no CLIP weights ({clip._EXPECTED})" in page  # the message table quotes the code
