"""SCRL shot encoder: its MoCo checkpoint layout through the real loader, and outputs against a
literal reimplementation of SCRL's extract_embeddings.py (cv2 RGB images, ToPILImage, Resize(224),
CenterCrop(224), ToTensor, Normalize, keyframes concatenated on channels, forward without fc)."""

import io

import cv2
import numpy as np
import pytest
import torch
import torchvision
from model_init import randomised
from PIL import Image
from torchvision import transforms

from reelbeam.models.checkpoints import CheckpointError
from reelbeam.models.scrl import SCRLEncoder, SCRLEncoderHandler, load_scrl, save_moco_layout


@pytest.fixture(scope="module")
def moco_file(tmp_path_factory):
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("scrl") / "SCRL_pretrain_with_imagenet1k.pth.tar"
    save_moco_layout(randomised(SCRLEncoder()), str(path))
    return str(path)


def keyframe_jpegs(seed, n=3, size=(180, 320)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (size[0] // 10, size[1] // 10, 3), dtype=np.uint8)
        img = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class ReferenceEncoder(torchvision.models.ResNet):
    """SCRL's `Encoder(ResNet)`: fc = Linear(2048, 2048) (num_classes=2048), input_channel 9."""

    def __init__(self):
        super().__init__(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3], num_classes=2048)
        self.conv1 = torch.nn.Conv2d(9, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x, is_fc=True):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x) if is_fc else x


def reference_embeddings(path, shots):
    """SCRL's get_encoder + MovieNet_SingleShot_Dataset._process, literally."""
    encoder = ReferenceEncoder()
    model_weight = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    pretrained = {}
    for k, v in model_weight.items():
        if k.startswith("module.encoder_k"):
            continue
        if k == "module.queue" or k == "module.queue_ptr":
            continue
        if k.startswith("module.encoder_q") and not k.startswith("module.encoder_q.fc"):
            k = k[17:]
        pretrained[k] = v
    encoder.load_state_dict(pretrained, strict=False)
    encoder.eval()
    tf = transforms.Compose(
        [
            transforms.ToPILImage(),
            transforms.Resize(224),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    data = []
    for jpegs in shots:
        imgs = [cv2.cvtColor(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for j in jpegs]
        data.append(torch.cat([tf(i) for i in imgs], axis=0))
    with torch.no_grad():
        return encoder(torch.stack(data).view(-1, 9, 224, 224), False).numpy()


def test_moco_checkpoint_loads_the_query_encoder(moco_file):
    model = load_scrl(moco_file)
    saved = torch.load(moco_file, weights_only=True)["state_dict"]
    assert model.conv1.weight.shape == (64, 9, 7, 7)
    assert torch.equal(model.layer3[2].conv2.weight, saved["module.encoder_q.layer3.2.conv2.weight"])
    assert isinstance(model.fc, torch.nn.Identity)


def test_handler_equals_the_reference_path(moco_file):
    shots = [keyframe_jpegs(1), keyframe_jpegs(2, size=(240, 320))]
    handler = SCRLEncoderHandler(moco_file, device="cpu")
    got = np.stack([r.inference for r in handler.run_inference(shots, handler.load_model())])
    expected = reference_embeddings(moco_file, shots)
    assert got.shape == (2, 2048)
    assert np.abs(got - expected).max() <= 1e-4
    # The keyframe order matters (early fusion): swapping two keyframes changes the embedding.
    swapped = handler.run_inference([[shots[0][1], shots[0][0], shots[0][2]]], handler.load_model())[0].inference
    assert np.abs(swapped - got[0]).max() > 1e-2


def test_bare_encoder_state_dict_loads(moco_file, tmp_path):
    model = load_scrl(moco_file)
    path = tmp_path / "encoder.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    again = load_scrl(str(path))
    x = torch.randn(1, 3, 3, 64, 64)
    assert torch.equal(model.encode_shots(x), again.encode_shots(x))


def test_a_three_channel_resnet_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "resnet50.pt"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(CheckpointError, match="takes 3 channels.*--scene-checkpoint"):
        load_scrl(str(path))
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(64, 9, 7, 7)}}, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_scrl(str(path))
