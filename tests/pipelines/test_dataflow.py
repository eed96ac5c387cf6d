"""The Dataflow job, built offline (`DataflowRunner` with `--dry_run=True`, no credentials, no
network): its step names are stable, the accelerator hint sits on the model steps and nowhere
else, and the job carries the worker image and the package built from --setup_file. Also the
hardware decisions: the launcher's GPU never shapes a job for remote workers."""

import os

import pytest
import torch

from reelbeam.models.bassl import BaSSL, save_modelscope_layout
from reelbeam.pipelines.cli import main, run
from reelbeam.pipelines.options import ConfigError, accelerator_hint
from reelbeam.stages.base import Hardware

pytest.importorskip("apache_beam.runners.dataflow.dataflow_runner")
pytest.importorskip("google.cloud.storage")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "us-docker.pkg.dev/my-project/reelbeam/worker:0.1"
L4 = "type:nvidia-l4;count:1;install-nvidia-driver"


def dataflow_flags(*extra):
    return [
        "--input", "gs://my-bucket/videos/*.mp4", "--output", "gs://my-bucket/tables",
        "--runner", "DataflowRunner", "--project", "my-project", "--region", "us-central1",
        "--temp_location", "gs://my-bucket/tmp", "--setup_file", os.path.join(ROOT, "setup.py"),
        "--sdk_container_image", IMAGE, "--experiments", "use_runner_v2", "--no_auth", "--dry_run", *extra,
    ]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("bassl") / "pytorch_model.pt"
    save_modelscope_layout(BaSSL().eval(), str(path))
    return str(path)


@pytest.fixture(scope="module")
def gpu_job(checkpoint):
    return run(dataflow_flags("--gpu-accelerator", "nvidia-l4", "--scene-checkpoint", checkpoint))


def test_the_job_is_built_offline_and_nothing_is_submitted(gpu_job):
    assert gpu_job.dry_run and gpu_job.graph is not None
    assert gpu_job.graph.leaf_steps


def test_the_accelerator_is_on_the_model_steps_and_on_no_other(gpu_job):
    graph = gpu_job.graph
    assert set(graph.accelerated) == {
        "Decode/ShotsBeforeAssembly/ScoreTransitions/BeamML_RunInference",
        "BasslEncoder/EncodeShots/EncodeShotsResNet50/BeamML_RunInference",
        "Boundaries/ScoreBoundaries/ScoreWindowsCRN/BeamML_RunInference",
    }
    assert set(graph.accelerated.values()) == {L4}
    # The decode pass, the keyframes, the writers and the ledger stay on CPU workers.
    cpu = [s for s in graph.leaf_steps if s not in graph.accelerated]
    assert any(s.startswith("Decode/") for s in cpu)
    assert any(s.startswith("Write_") for s in cpu)
    assert {s.name for s in gpu_job.stages if s.resource_hints} == {"shots", "bassl_encoder", "boundaries"}
    # Model steps ask their workers for CUDA (they fail there, saying so, on a worker without it) and
    # are laid out for GPUs: TransNetV2 batched outside the decode pass, one model copy per worker.
    shots = gpu_job.stage("shots")
    assert (shots.device, shots.inline, shots.batch, shots.model_copies) == ("cuda", False, 64, 1)
    assert gpu_job.stage("bassl_encoder").device == "cuda"


def test_the_job_carries_the_worker_image_and_the_setup_package(gpu_job):
    assert set(gpu_job.graph.images) == {IMAGE}
    assert "workflow.tar.gz" in gpu_job.graph.staged  # the sdist built from --setup_file


def test_step_names_are_stable(gpu_job, checkpoint):
    again = run(dataflow_flags("--gpu-accelerator", "nvidia-l4", "--scene-checkpoint", checkpoint))
    assert again.graph.leaf_steps == gpu_job.graph.leaf_steps
    assert again.graph.steps == gpu_job.graph.steps
    for name in ("Decode", "BasslEncoder", "Boundaries", "ModelScenes", "RunComplete"):
        assert any(s == name or s.startswith(name + "/") for s in gpu_job.graph.leaf_steps + gpu_job.graph.steps), name


def test_without_an_accelerator_no_step_is_hinted_and_the_launchers_gpu_is_not_consulted(monkeypatch):
    def no_probe(self):
        raise AssertionError("the launcher's hardware was probed for a Dataflow job")

    monkeypatch.setattr(Hardware, "cuda", property(no_probe))
    plan = run(dataflow_flags())
    assert plan.graph.accelerated == {}
    shots = plan.stage("shots")
    # CPU workers: TransNetV2 inside the decode pass; the device is decided on each worker.
    assert (shots.device, shots.inline, shots.batch) == ("auto", True, 1)


def test_a_local_run_follows_the_local_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(Hardware, "cuda", property(lambda self: True))
    plan = run(["--input", "x.mp4", "--output", str(tmp_path / "o"), "--dry_run"])
    shots = plan.stage("shots")
    assert (shots.inline, shots.batch) == (False, 64)
    assert not os.path.exists(tmp_path / "o")  # a dry run writes nothing


def test_dry_run_prints_the_stages_and_gpu_steps(capsys):
    assert main(["run", *dataflow_flags("--gpu-accelerator", "nvidia-tesla-t4:2")]) == 0
    out = capsys.readouterr().out
    assert "dry run: the job was built and not run" in out
    assert "shots              model step on GPU workers: type:nvidia-tesla-t4;count:2;install-nvidia-driver" in out
    assert f"worker image: {IMAGE}" in out
    assert "0 videos ok" not in out


@pytest.mark.parametrize("value, expected", [
    ("nvidia-l4", L4),
    ("nvidia-tesla-t4:2", "type:nvidia-tesla-t4;count:2;install-nvidia-driver"),
    ("type:nvidia-l4;count:1;machine_type:g2-standard-8", "type:nvidia-l4;count:1;machine_type:g2-standard-8;install-nvidia-driver"),
    ("type:nvidia-l4;install-nvidia-driver:5xx", "type:nvidia-l4;install-nvidia-driver:5xx"),
])
def test_accelerator_values(value, expected):
    assert accelerator_hint(value) == expected


@pytest.mark.parametrize("value, message", [
    ("l4", "expected TYPE\\[:COUNT\\]"),
    ("nvidia-l4:0", "the count after ':' must be a whole number >= 1"),
    ("type:nvidia-l4;gpus:2", "unknown key 'gpus'"),
    ("type:nvidia-l4;count:two", "count must be a whole number"),
])
def test_bad_accelerator_values_are_refused_in_one_line(value, message):
    with pytest.raises(ConfigError, match=message):
        accelerator_hint(value)


def test_contradictions_and_missing_dataflow_flags_fail_before_anything_is_built(capsys):
    with pytest.raises(ConfigError, match="drop one of them"):
        run(dataflow_flags("--gpu-accelerator", "nvidia-l4", "--device", "cpu"))
    flags = [f for f in dataflow_flags() if f not in ("--project", "my-project")]
    assert main(["run", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reelbeam: error: Dataflow: ") and "project" in err and len(err.splitlines()) == 1


def test_an_accelerator_for_a_local_run_without_a_gpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Hardware, "cuda", property(lambda self: False))
    with pytest.raises(ConfigError, match="this run's workers are this machine's processes and it has no CUDA"):
        run(["--input", "x.mp4", "--output", str(tmp_path / "o"), "--gpu-accelerator", "nvidia-l4"])
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="--device cuda: this run's workers are this machine's processes"):
        run(["--input", "x.mp4", "--output", str(tmp_path / "o"), "--device", "cuda"])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("location", ["gs://b/t", "gs://My_Bucket/t", "gs://-bucket/t"])
def test_a_temp_location_that_is_no_bucket_name_is_refused_before_beam_looks_for_one(location):
    """Beam's validator would replace it by a default bucket it looks up on Cloud Storage (minutes
    of credential retries offline)."""
    flags = [f if f != "gs://my-bucket/tmp" else location for f in dataflow_flags()]
    with pytest.raises(ConfigError, match=r"--temp_location .*is not a Cloud Storage bucket name"):
        run(flags)


@pytest.mark.parametrize(
    "given, expected",
    [
        (["--dry_run"], ["--dry_run=True"]),
        (["--dry-run", "x"], ["x", "--dry_run=True"]),
        (["--dry_run", "false"], []),
        (["--dry_run=False"], []),  # Beam would read the string "False" as true
        (["--dry_run=False", "--dry_run"], ["--dry_run=True"]),  # the last one wins, as in Beam
        (["--dry_run", "--dry_run=FALSE"], []),
    ],
)
def test_dry_run_flags_become_one_beam_flag(given, expected):
    from reelbeam.pipelines.options import normalize_dry_run

    assert normalize_dry_run(given) == expected


def test_a_dry_run_value_other_than_true_or_false_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--dry_run=yes: give --dry_run"):
        run(["--input", "x.mp4", "--output", str(tmp_path / "o"), "--dry_run=yes"])
    assert not (tmp_path / "o").exists()


def test_a_repeated_runner_flag_is_read_as_beam_reads_it():
    from reelbeam.pipelines.options import runner_name

    assert runner_name(["--runner", "PortableRunner", "--runner", "DirectRunner"]) == "DirectRunner"


@pytest.mark.parametrize("gpu, message", [
    ("nvidia-l4:0", "COUNT must be a whole number >= 1"),
    ("nvidia-l4:x", "COUNT must be a whole number >= 1"),
    ("nvidia-l4:1:2", "COUNT must be a whole number >= 1"),
    (":2", "TYPE is an nvidia-\\* GPU type"),
])
def test_run_dataflow_sh_checks_its_gpu_value(gpu, message):
    import re
    import subprocess

    script = os.path.join(ROOT, "run_dataflow.sh")
    args = ["--project", "p", "--region", "r", "--image", "i", "--bucket", "bkt", "--gpu", gpu, "--dry-run",
            "--", "--input", "x", "--output", "gs://bkt/o"]
    proc = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and re.search(message, proc.stderr.splitlines()[0]), proc.stderr


def test_a_local_output_folder_is_refused_for_dataflow(tmp_path):
    flags = [f if f != "gs://my-bucket/tables" else str(tmp_path / "o") for f in dataflow_flags()]
    with pytest.raises(ConfigError, match="Dataflow's workers cannot write to a folder of this machine; give a gs:// URL"):
        run(flags)


def test_a_job_whose_workers_would_lack_reelbeam_is_warned_about(caplog):
    flags = dataflow_flags()
    i = flags.index("--setup_file")
    j = flags.index("--sdk_container_image")
    flags = [f for k, f in enumerate(flags) if k not in (i, i + 1, j, j + 1)]
    run(flags)
    assert "the workers will not have reelbeam" in caplog.text
