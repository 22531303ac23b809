"""Convolutional image classifiers: ResNet, MobileNet v2/v3, EfficientNet-B0, ConvNeXt.

Layer configurations follow torchvision; BatchNorm is folded into the preceding convolution
(see ``layers``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.image import classifier_head, image_input


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ---------------------------------------------------------------------------------- ResNet
def resnet_backbone(
    b: GraphBuilder,
    x: str,
    layers: Sequence[int],
    bottleneck: bool,
    dilate: Sequence[bool] = (False, False, False),
    return_stages: bool = False,
    width_factor: int = 1,
) -> list[str]:
    """torchvision ResNet (v1.5: stride on the 3x3) up to the last stage in ``layers``; returns the
    stage outputs. ``width_factor=2`` gives Wide ResNet (wider bottleneck 3x3 convolutions)."""
    with b.scope("stem"):
        y = b.conv_act(x, 64, 7, 2, name="conv1")
        y = b.maxpool(y, 3, 2, 1)
    inplanes = 64
    dilation = 1
    expansion = 4 if bottleneck else 1
    stages = []
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512)[: len(layers)], layers, strict=True)):
        stride = 1 if stage == 0 else 2
        previous_dilation = dilation
        if stage > 0 and dilate[stage - 1]:
            dilation *= stride
            stride = 1
        for i in range(blocks):
            with b.scope(f"layer{stage + 1}.{i}"):
                s = stride if i == 0 else 1
                d = previous_dilation if i == 0 else dilation
                identity = y
                if i == 0 and (s != 1 or inplanes != planes * expansion):
                    identity = b.conv_act(y, planes * expansion, 1, s, act=None, name="downsample")
                if bottleneck:
                    h = b.conv_act(y, planes * width_factor, 1, name="conv1")
                    h = b.conv_act(h, planes * width_factor, 3, s, dilation=d, name="conv2")
                    h = b.conv_act(h, planes * 4, 1, act=None, name="conv3")
                else:
                    h = b.conv_act(y, planes, 3, s, name="conv1")
                    h = b.conv_act(h, planes, 3, act=None, name="conv2")
                y = b.relu(b.add(h, identity))
            inplanes = planes * expansion
        stages.append(y)
    return stages if return_stages else [y]


def resnet(
    b: GraphBuilder, shape: Sequence[int], layers: Sequence[int], bottleneck: bool, classes: int = 1000
) -> None:
    x = image_input(b, shape)
    y = resnet_backbone(b, x, layers, bottleneck)[-1]
    b.output(classifier_head(b, y, classes), "logits")


# ---------------------------------------------------------------------------------- MobileNets
def mobilenet_v2_features(b: GraphBuilder, x: str, width: float = 1.0) -> str:
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    cin = make_divisible(32 * width)
    y = b.conv_act(x, cin, 3, 2, act="relu6", name="features.0")
    idx = 1
    for t, c, n, s in settings:
        cout = make_divisible(c * width)
        for i in range(n):
            with b.scope(f"features.{idx}"):
                stride = s if i == 0 else 1
                hidden = cin * t
                h = y
                if t != 1:
                    h = b.conv_act(h, hidden, 1, act="relu6", name="expand")
                h = b.conv_act(h, hidden, 3, stride, act="relu6", groups=hidden, name="dw")
                h = b.conv_act(h, cout, 1, act=None, name="project")
                y = b.add(y, h) if stride == 1 and cin == cout else h
            cin = cout
            idx += 1
    return b.conv_act(y, make_divisible(1280 * max(1.0, width)), 1, act="relu6", name=f"features.{idx}")


def mobilenet_v2(b: GraphBuilder, shape: Sequence[int], classes: int = 1000) -> None:
    y = mobilenet_v2_features(b, image_input(b, shape))
    b.output(classifier_head(b, y, classes), "logits")


MBV3_LARGE = [
    (16, 3, 16, 16, False, "relu", 1),
    (16, 3, 64, 24, False, "relu", 2),
    (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hardswish", 2),
    (80, 3, 200, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 480, 112, True, "hardswish", 1),
    (112, 3, 672, 112, True, "hardswish", 1),
    (112, 5, 672, 160, True, "hardswish", 2),
    (160, 5, 960, 160, True, "hardswish", 1),
    (160, 5, 960, 160, True, "hardswish", 1),
]
_MBV3_SMALL = [
    (16, 3, 16, 16, True, "relu", 2),
    (16, 3, 72, 24, False, "relu", 2),
    (24, 3, 88, 24, False, "relu", 1),
    (24, 5, 96, 40, True, "hardswish", 2),
    (40, 5, 240, 40, True, "hardswish", 1),
    (40, 5, 240, 40, True, "hardswish", 1),
    (40, 5, 120, 48, True, "hardswish", 1),
    (48, 5, 144, 48, True, "hardswish", 1),
    (48, 5, 288, 96, True, "hardswish", 2),
    (96, 5, 576, 96, True, "hardswish", 1),
    (96, 5, 576, 96, True, "hardswish", 1),
]


def squeeze_excite(
    b: GraphBuilder, x: str, squeeze: int, act: str = "relu", gate: str = "hardsigmoid"
) -> str:
    c = b.channels(x)
    with b.scope("se"):
        s = b.global_avgpool(x)
        s = b.act(b.conv(s, squeeze, 1, name="fc1"), act)
        s = b.act(b.conv(s, c, 1, name="fc2"), gate)
        return b.mul(x, s)


def mobilenet_v3_features(
    b: GraphBuilder,
    x: str,
    variant: str,
    dilated: bool = False,
    return_taps: bool = False,
    reduced_tail: bool = False,
) -> list[str]:
    """torchvision MobileNetV3 features; ``dilated`` replaces the last stride by dilation 2
    (segmentation); ``reduced_tail`` halves the channels of the C4 stage (as SSDlite's detector does).

    With ``return_taps`` returns [input of the C4 block, C4 expansion (SSDlite tap), final]."""
    cfg = list(MBV3_LARGE if variant == "large" else _MBV3_SMALL)
    if reduced_tail:
        c4 = max(i for i, c in enumerate(cfg) if c[6] == 2)
        cfg = [
            (c[0] // 2 if i > c4 else c[0], c[1], c[2] // 2 if i > c4 else c[2], c[3] // 2, *c[4:])
            if i >= c4
            else c
            for i, c in enumerate(cfg)
        ]
    y = b.conv_act(x, 16, 3, 2, act="hardswish", name="features.0")
    taps: list[str] = []
    last_stride2 = max(i for i, c in enumerate(cfg) if c[6] == 2)
    for i, (cin, k, exp, cout, se, act, stride) in enumerate(cfg):
        with b.scope(f"features.{i + 1}"):
            dil = 2 if dilated and i >= last_stride2 else 1
            s = 1 if dil > 1 else stride
            if i == last_stride2:
                taps.append(y)  # input of the C4 block: the stride-8/16 feature map
            h = y
            if exp != cin:
                h = b.conv_act(h, exp, 1, act=act, name="expand")
                if i == last_stride2:
                    taps.append(h)  # SSDlite taps the C4 expansion
            h = b.conv_act(h, exp, k, s, act=act, groups=exp, dilation=dil, name="dw")
            if se:
                h = squeeze_excite(b, h, make_divisible(exp // 4, 8))
            h = b.conv_act(h, cout, 1, act=None, name="project")
            y = b.add(y, h) if stride == 1 and cin == cout else h
    last = 6 * cfg[-1][3]
    y = b.conv_act(y, last, 1, act="hardswish", name=f"features.{len(cfg) + 1}")
    return [*taps, y] if return_taps else [y]


def mobilenet_v3(b: GraphBuilder, shape: Sequence[int], variant: str = "large", classes: int = 1000) -> None:
    y = mobilenet_v3_features(b, image_input(b, shape), variant)[-1]
    head = 1280 if variant == "large" else 1024
    b.output(classifier_head(b, y, classes, hidden=[head], act="hardswish"), "logits")


def efficientnet_b0(b: GraphBuilder, shape: Sequence[int], classes: int = 1000) -> None:
    """torchvision efficientnet_b0 (MBConv with SE from the block input width / 4, SiLU)."""
    settings = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ]
    y = b.conv_act(image_input(b, shape), 32, 3, 2, act="silu", name="features.0")
    for stage, (t, k, s, cin0, cout, n) in enumerate(settings):
        for i in range(n):
            with b.scope(f"features.{stage + 1}.{i}"):
                cin = cin0 if i == 0 else cout
                stride = s if i == 0 else 1
                exp = cin * t
                h = y
                if exp != cin:
                    h = b.conv_act(h, exp, 1, act="silu", name="expand")
                h = b.conv_act(h, exp, k, stride, act="silu", groups=exp, name="dw")
                h = squeeze_excite(b, h, max(1, cin // 4), act="silu", gate="sigmoid")
                h = b.conv_act(h, cout, 1, act=None, name="project")
                y = b.add(y, h) if stride == 1 and cin == cout else h
    y = b.conv_act(y, 1280, 1, act="silu", name="features.8")
    b.output(classifier_head(b, y, classes), "logits")


def _layer_norm_2d(b: GraphBuilder, x: str, name: str) -> str:
    t = b.transpose(x, [0, 2, 3, 1])
    return b.transpose(b.layer_norm(t, 1e-6, name=name), [0, 3, 1, 2])


def convnext(
    b: GraphBuilder,
    shape: Sequence[int],
    depths: Sequence[int] = (3, 3, 9, 3),
    dims: Sequence[int] = (96, 192, 384, 768),
    classes: int = 1000,
) -> None:
    """torchvision convnext_tiny: patchify stem, CNBlocks (dw 7x7, LN, MLP x4, layer scale)."""
    x = image_input(b, shape)
    y = _layer_norm_2d(b, b.conv(x, dims[0], 4, 4, pad=0, name="stem"), "stem.ln")
    for s, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        if s > 0:
            with b.scope(f"downsample{s}"):
                y = b.conv(_layer_norm_2d(b, y, "ln"), dim, 2, 2, pad=0, name="conv")
        for i in range(depth):
            with b.scope(f"stage{s}.{i}"):
                h = b.conv(y, dim, 7, groups=dim, name="dwconv")
                h = b.transpose(h, [0, 2, 3, 1])
                h = b.layer_norm(h, 1e-6)
                h = b.ffn(h, 4 * dim)
                h = b.mul(h, b.param("layer_scale", (dim,), bound=1e-6))
                y = b.add(y, b.transpose(h, [0, 3, 1, 2]))
    y = b.flatten(b.global_avgpool(y))
    y = b.layer_norm(y, 1e-6, name="head.ln")
    b.output(b.gemm(y, classes, name="head"), "logits")
