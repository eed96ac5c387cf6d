"""Where and in which precision a model runs, decided where it runs (on the worker that loads it).

`--device auto` and `--model-precision auto` are resolved here, when the model loads, so a job
launched from a CPU machine runs its models on the workers' GPUs.

bf16 on a CPU is worth it only where oneDNN has bf16 kernels for it (AVX-512 or AMX; it honours
`ONEDNN_MAX_CPU_ISA`). Elsewhere (an AMD EPYC without AVX-512, say) PyTorch emulates it, ~50x slower
than fp32 (139 s against 2.5 s for one TransNetV2 window, measured on such a CPU). So: 'auto' never
picks bf16 on a CPU without those kernels, an explicit bf16 is refused before a local run
(`ConfigError`, in the stages' configuration), and a remote worker that turns out to lack them
runs fp32 and says so once (`progress.note`) rather than run 50x slower without a word.
"""

from __future__ import annotations

import functools

BF16_EMULATED = (
    "this CPU has no native bf16 (oneDNN has no AVX-512/AMX bf16 kernels here), so bf16 would be emulated, "
    "~50x slower than fp32"
)


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


@functools.cache
def native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 or newer; honours ONEDNN_MAX_CPU_ISA)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def emulated_bf16(precision: str | None, device: str) -> bool:
    """Whether `precision` on `device` ('cpu', 'cuda', 'auto' as the launcher knows it) means bf16
    arithmetic emulated on this CPU."""
    return precision == "bf16" and not str(device).startswith("cuda") and not native_bf16()


def resolve_precision(precision: str | None, device: str, model: str = "this model") -> str:
    """The arithmetic a model runs in on `device` ('cpu' or 'cuda', resolved on the worker).

    'auto'/None -> bf16 on a GPU, fp32 on a CPU (bf16 on CPUs gains little for the encoders and
    moves their numbers more). An explicit 'bf16' on a CPU without native bf16 -> fp32, with a
    note (a local run refuses it before it starts; a remote worker's CPU is known only here).
    Other values as given."""
    if precision in (None, "auto"):
        return "bf16" if device.startswith("cuda") else "fp32"
    if emulated_bf16(precision, device):
        from reelbeam import progress

        progress.note(f"{model}: bf16 asked for, but {BF16_EMULATED}: running fp32 on this worker")
        return "fp32"
    return precision
