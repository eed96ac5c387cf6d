"""Checkpoints in the published layouts (the names, shapes and wrappers of each model's file) whose
tensors hold no data: every tensor is one zero expanded to its shape, so a ResNet-50 file is a few
hundred kB instead of ~100 MB. `tensor_shapes`, and so every check before a run and
`reelbeam weights check`, read only names and shapes; for loading and numerics the model tests
write real weights."""

import torch

from reelbeam.models.checkpoints import expected_shapes


def hollow(shapes) -> dict:
    """{name: shape} -> {name: a tensor of that shape sharing one 0-d zero (nothing to store)}."""
    return {k: torch.zeros(()).expand(tuple(shape)) for k, shape in shapes.items()}


class Hollow:
    """What the project's `save_*_layout` functions read of a model (`state_dict()`), hollow."""

    def __init__(self, build) -> None:
        self._shapes = expected_shapes(build)

    def state_dict(self) -> dict:
        return hollow(self._shapes)


def save_bassl_modelscope(path: str) -> str:
    """ModelScope's flat pytorch_model.pt of BaSSL (encoder, CRN, head and its unused buffers)."""
    from reelbeam.models.bassl import BaSSL, save_modelscope_layout

    save_modelscope_layout(Hollow(BaSSL), path)
    return path


def save_bassl_lightning(path: str) -> str:
    """BaSSL's pre-training Lightning .ckpt: 'state_dict' with shot_encoder., crn. and loss.*, no head."""
    from reelbeam.models.bassl import BaSSL

    state = {k: v for k, v in Hollow(BaSSL).state_dict().items() if not k.startswith("head_sbd.")}
    state["loss.head_pp.weight"] = torch.zeros(()).expand(2, 768)
    torch.save({"epoch": 9, "global_step": 100, "pytorch-lightning_version": "1.3.8", "state_dict": state}, path)
    return path


def save_scrl_moco(path: str) -> str:
    """SCRL's MoCo training checkpoint (`save_moco_layout`'s names: query and momentum encoders with
    their MLP heads, the queue)."""
    from reelbeam.models.scrl import SCRLEncoder

    state = {}
    for key, value in Hollow(SCRLEncoder).state_dict().items():
        state[f"module.encoder_q.{key}"] = value
        state[f"module.encoder_k.{key}"] = value
    for enc in ("encoder_q", "encoder_k"):
        state.update(hollow({f"module.{enc}.fc.0.weight": (2048, 2048), f"module.{enc}.fc.0.bias": (2048,),
                             f"module.{enc}.fc.2.weight": (128, 2048), f"module.{enc}.fc.2.bias": (128,)}))
    state["module.queue"] = torch.zeros(()).expand(128, 16)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def save_cmd(path: str) -> str:
    """ModelScope's flat pytorch_model.pt of CMD's R(2+1)D-26."""
    from reelbeam.models.r2plus1d import R2Plus1D26, save_modelscope_layout

    save_modelscope_layout(Hollow(R2Plus1D26), path)
    return path


def save_clipit(path: str) -> str:
    """ModelScope's pytorch_model.pt of CLIP-It's scoring transformer, decoder included."""
    from reelbeam.models.clipit import ClipIt

    torch.save(Hollow(ClipIt).state_dict(), path)
    return path
