"""Where and in which precision a model runs, decided where it runs (on the worker that loads it).

`--device auto` and `--model-precision auto` are resolved here, when the model loads, so a job
launched from a CPU machine runs its models on the workers' GPUs.
"""

from __future__ import annotations


def resolve_device(device: str | None) -> str:
    """'auto'/None -> 'cuda' when this process sees a CUDA device, else 'cpu'; 'cuda' on a worker
    without one fails here, naming the flag (the launcher cannot know the workers' hardware)."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "this model step asked for CUDA (--device cuda or --gpu-accelerator) but its worker sees no CUDA "
            "device: check the workers' accelerator, its driver (install-nvidia-driver) and the container's "
            "CUDA torch, or run with --device auto"
        )
    return device


def resolve_precision(precision: str | None, device: str) -> str:
    """'auto'/None -> bf16 on a GPU, fp32 on a CPU (bf16 on CPUs gains little for the encoders and
    moves their numbers more); 'fp32'/'bf16' as given."""
    if precision in (None, "auto"):
        return "bf16" if device == "cuda" else "fp32"
    return precision
