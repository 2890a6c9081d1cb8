"""The two EasyOCR networks, defined here so that their state dicts load without easyocr.

`CRAFT` is the text detector (a VGG16-BN backbone under a small U-net, two score maps out:
character region and affinity between characters); `Recogniser` is EasyOCR's generation-2
CRNN (a VGG feature extractor, two bidirectional LSTMs, a linear CTC head). Module names
and layer order follow EasyOCR's `craft.py`, `model/modules.py` and `model/vgg_model.py`
(Apache-2.0; CRAFT itself is NAVER's, MIT) so that `craft_mlt_25k.pth` and
`english_g2.pth` load with `strict=True`. torchvision's `vgg16_bn` is written out layer by
layer instead of imported: only the layer indices matter to the state dict.

Inference only: no weight initialisation, no training code.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

# torchvision's vgg16_bn `features`: numbers are conv widths, "M" a 2x2 max pool.
_VGG16: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
]

# EasyOCR's `english_g2` character list (easyocr/config.py); index 0 is the CTC blank.
CHARACTERS = (
    "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ €"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _vgg16_bn_features() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            width = int(item)
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
    return layers


class VGG16BN(nn.Module):
    """CRAFT's backbone: torchvision's vgg16_bn cut into five slices, fc6/fc7 as convolutions."""

    def __init__(self) -> None:
        super().__init__()
        features = _vgg16_bn_features()

        def cut(start: int, end: int) -> nn.Sequential:  # keeps torchvision's layer indices
            block = nn.Sequential()
            for index in range(start, end):
                block.add_module(str(index), features[index])
            return block

        self.slice1 = cut(0, 12)  # up to conv2_2
        self.slice2 = cut(12, 19)  # conv3_2
        self.slice3 = cut(19, 29)  # conv4_3
        self.slice4 = cut(29, 39)  # conv5_3
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Slices 1-3 end on a BatchNorm and the next slice opens with torchvision's in-place
        # ReLU, which in EasyOCR rewrites the saved skip tensor: the U-net was trained on
        # rectified skips from them. Slice 4's next layer is a max pool, so its skip is not.
        relu2_2 = functional.relu(self.slice1(x))
        relu3_2 = functional.relu(self.slice2(relu2_2))
        relu4_3 = functional.relu(self.slice3(relu3_2))
        relu5_3 = self.slice4(relu4_3)
        fc7 = self.slice5(relu5_3)
        return [fc7, relu5_3, relu4_3, relu3_2, relu2_2]


class DoubleConv(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CRAFT(nn.Module):
    """Character-region detector; returns (N, H/2, W/2, 2): region score, affinity score."""

    def __init__(self) -> None:
        super().__init__()
        self.basenet = VGG16BN()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(16, 2, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sources = self.basenet(x)
        y = self.upconv1(torch.cat([sources[0], sources[1]], dim=1))
        for skip, up in zip(sources[2:], (self.upconv2, self.upconv3, self.upconv4), strict=True):
            y = functional.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], dim=1))
        return self.conv_cls(y).permute(0, 2, 3, 1)


class VGGFeatureExtractor(nn.Module):
    def __init__(self, input_channel: int, output_channel: int) -> None:
        super().__init__()
        c = [output_channel // 8, output_channel // 4, output_channel // 2, output_channel]
        self.ConvNet = nn.Sequential(
            nn.Conv2d(input_channel, c[0], 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c[0], c[1], 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c[1], c[2], 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(c[2], c[2], 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d((2, 1), (2, 1)),
            nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False),
            nn.BatchNorm2d(c[3]),
            nn.ReLU(),
            nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False),
            nn.BatchNorm2d(c[3]),
            nn.ReLU(),
            nn.MaxPool2d((2, 1), (2, 1)),
            nn.Conv2d(c[3], c[3], 2, 1, 0),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ConvNet(x)


class BidirectionalLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recurrent, _ = self.rnn(x)
        return self.linear(recurrent)


class Recogniser(nn.Module):
    """CRNN for one text line: (N, 1, 64, W) grey in [-1, 1] -> (N, T, classes) logits."""

    def __init__(self, num_class: int = len(CHARACTERS) + 1, hidden: int = 256) -> None:
        super().__init__()
        self.FeatureExtraction = VGGFeatureExtractor(1, hidden)
        self.AdaptiveAvgPool = nn.AdaptiveAvgPool2d((None, 1))
        self.SequenceModeling = nn.Sequential(
            BidirectionalLSTM(hidden, hidden, hidden), BidirectionalLSTM(hidden, hidden, hidden)
        )
        self.Prediction = nn.Linear(hidden, num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.AdaptiveAvgPool(self.FeatureExtraction(x).permute(0, 3, 1, 2)).squeeze(3)
        return self.Prediction(self.SequenceModeling(visual).contiguous())


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Drop the `module.` that nn.DataParallel put before every key when the weights were saved."""
    return OrderedDict((k.removeprefix("module."), v) for k, v in state.items())


def load_network(network: nn.Module, path: Path, device: str) -> nn.Module:
    """Load a state dict (tensors only: `weights_only=True`) into `network` on `device`."""
    state = torch.load(path, map_location=device, weights_only=True)
    network.load_state_dict(_strip_module_prefix(state), strict=True)
    return network.to(device).eval()
