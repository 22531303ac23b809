"""Segmenters: U-Net, DeepLabv3 (ResNet-50) and LR-ASPP (MobileNet v3)."""

from __future__ import annotations

from collections.abc import Sequence

from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.cnn import MBV3_LARGE, make_divisible, resnet_backbone, squeeze_excite
from sustainml.onnxgraphs.vision.image import image_input


def unet(b: GraphBuilder, shape: Sequence[int], classes: int = 2, base: int = 64) -> None:
    """Original U-Net (Ronneberger et al. 2015, Fig. 1): valid 3x3 convs, 2x2 up-convolutions,
    centre-cropped skip connections; 572x572 in, 388x388 out."""
    y = image_input(b, shape)
    skips = []
    widths = [base * 2**i for i in range(5)]
    for i, w in enumerate(widths):
        with b.scope(f"down{i}"):
            y = b.conv_act(y, w, 3, pad=0, name="conv1")
            y = b.conv_act(y, w, 3, pad=0, name="conv2")
        if i < 4:
            skips.append(y)
            y = b.maxpool(y, 2, 2)
    for i, w in enumerate(reversed(widths[:4])):
        with b.scope(f"up{i}"):
            y = b.conv_transpose(y, w, 2, 2, name="upconv")
            skip = skips[3 - i]
            size, target = int(b.shape(skip)[2]), int(b.shape(y)[2])
            off = (size - target) // 2
            crop = b.slice(b.slice(skip, 2, off, off + target), 3, off, off + target)
            y = b.concat([crop, y], 1)
            y = b.conv_act(y, w, 3, pad=0, name="conv1")
            y = b.conv_act(y, w, 3, pad=0, name="conv2")
    b.output(b.conv(y, classes, 1, name="head"), "logits")


def deeplabv3_resnet50(b: GraphBuilder, shape: Sequence[int], classes: int = 21) -> None:
    """torchvision deeplabv3_resnet50 (output stride 8, ASPP rates 12/24/36, FCN auxiliary head),
    both heads upsampled bilinearly to the input size."""
    x = image_input(b, shape)
    stages = resnet_backbone(b, x, [3, 4, 6, 3], True, dilate=(False, True, True), return_stages=True)
    c3, c4 = stages[2], stages[3]
    size = [int(d) for d in b.shape(x)[2:]]
    hw = [int(d) for d in b.shape(c4)[2:]]
    with b.scope("aspp"):
        branches = [b.conv_act(c4, 256, 1, name="b0")]
        for i, rate in enumerate((12, 24, 36)):
            branches.append(b.conv_act(c4, 256, 3, dilation=rate, name=f"b{i + 1}"))
        pooled = b.conv_act(b.global_avgpool(c4), 256, 1, name="pool")
        branches.append(b.upsample(pooled, hw, mode="linear"))
        y = b.conv_act(b.concat(branches, 1), 256, 1, name="project")
    y = b.conv_act(y, 256, 3, name="head.conv")
    y = b.conv(y, classes, 1, name="head.cls")
    b.output(b.upsample(y, [size[0] // hw[0], size[1] // hw[1]], mode="linear"), "out")
    a = b.conv_act(c3, 256, 3, name="aux.conv")
    a = b.conv(a, classes, 1, name="aux.cls")
    b.output(b.upsample(a, [size[0] // hw[0], size[1] // hw[1]], mode="linear"), "aux")


def lraspp_mobilenet_v3(b: GraphBuilder, shape: Sequence[int], classes: int = 21) -> None:
    """torchvision lraspp_mobilenet_v3_large: dilated MobileNetV3-Large, LR-ASPP head (128 ch)."""
    x = image_input(b, shape)
    cfg_low = 4  # features[4] (first stride-8 block) is the 'low' tap
    y = b.conv_act(x, 16, 3, 2, act="hardswish", name="features.0")
    low = y
    high = y
    for i, (cin, k, exp, cout, se, act, stride) in enumerate(MBV3_LARGE):
        with b.scope(f"features.{i + 1}"):
            dil = 2 if i >= 12 else 1
            s = 1 if dil > 1 else stride
            h = y
            if exp != cin:
                h = b.conv_act(h, exp, 1, act=act, name="expand")
            h = b.conv_act(h, exp, k, s, act=act, groups=exp, dilation=dil, name="dw")
            if se:
                h = squeeze_excite(b, h, make_divisible(exp // 4, 8))
            h = b.conv_act(h, cout, 1, act=None, name="project")
            y = b.add(y, h) if stride == 1 and cin == cout else h
        if i + 1 == cfg_low:
            low = y
    high = b.conv_act(y, 960, 1, act="hardswish", name="features.16")
    with b.scope("head"):
        h = b.conv_act(high, 128, 1, name="cbr")
        gate = b.sigmoid(b.conv(b.global_avgpool(high), 128, 1, bias=False, name="scale"))
        h = b.mul(h, gate)
        h = b.resize_to(h, [int(d) for d in b.shape(low)[2:]])
        y = b.add(b.conv(low, classes, 1, name="low_cls"), b.conv(h, classes, 1, name="high_cls"))
    size = [int(d) for d in b.shape(x)[2:]]
    b.output(b.resize_to(y, size), "out")
