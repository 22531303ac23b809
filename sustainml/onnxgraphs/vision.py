"""Image and video architectures: CNN classifiers, ViT, detectors, segmenters, video networks.

Layer configurations follow the reference implementations named in each docstring (torchvision
unless stated); BatchNorm is folded into the preceding convolution (see ``layers``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sustainml.onnxgraphs.layers import BATCH, GraphBuilder


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def image_input(b: GraphBuilder, shape: Sequence[int], name: str = "pixel_values") -> str:
    return b.input(name, (BATCH, *[int(d) for d in shape[1:]]))


def classifier_head(
    b: GraphBuilder, x: str, classes: int, hidden: Sequence[int] = (), act: str = "relu"
) -> str:
    """Global average pool, flatten, optional hidden layers, final linear layer."""
    y = b.flatten(b.global_avgpool(x))
    for i, h in enumerate(hidden):
        y = b.act(b.gemm(y, h, name=f"classifier.{i}"), act)
    return b.gemm(y, classes, name="fc")


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
    cin = _make_divisible(32 * width)
    y = b.conv_act(x, cin, 3, 2, act="relu6", name="features.0")
    idx = 1
    for t, c, n, s in settings:
        cout = _make_divisible(c * width)
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
    return b.conv_act(y, _make_divisible(1280 * max(1.0, width)), 1, act="relu6", name=f"features.{idx}")


def mobilenet_v2(b: GraphBuilder, shape: Sequence[int], classes: int = 1000) -> None:
    y = mobilenet_v2_features(b, image_input(b, shape))
    b.output(classifier_head(b, y, classes), "logits")


_MBV3_LARGE = [
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
    cfg = list(_MBV3_LARGE if variant == "large" else _MBV3_SMALL)
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
                h = squeeze_excite(b, h, _make_divisible(exp // 4, 8))
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


# ---------------------------------------------------------------------------------- transformers
def vit_encoder(
    b: GraphBuilder,
    tokens: str,
    layers: int,
    heads: int,
    mlp: int,
    eps: float = 1e-6,
    pre_norm: bool = True,
    final_norm: bool = True,
) -> str:
    """Pre-norm transformer encoder blocks (ViT/DeiT/BLIP vision/AST)."""
    y = tokens
    for i in range(layers):
        with b.scope(f"encoder.layer{i}"):
            h = b.mha(b.layer_norm(y, eps, name="ln1"), heads, fused_qkv=True)
            y = b.add(y, h)
            h = b.ffn(b.layer_norm(y, eps, name="ln2"), mlp)
            y = b.add(y, h)
    return b.layer_norm(y, eps, name="encoder.ln") if final_norm else y


def patch_tokens(
    b: GraphBuilder,
    x: str,
    dim: int,
    patch: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    cls: int = 1,
) -> str:
    """Patch embedding, flatten to tokens, prepend ``cls`` learned tokens, add position embeddings.

    The class token is written as Pad + Add (equivalent to a concat with a batch-expanded token),
    which keeps every shape static under a symbolic batch."""
    y = b.conv(x, dim, patch, patch if stride is None else stride, pad=0, name="patch_embed")
    shape = b.shape(y)
    n = math.prod(int(d) for d in shape[2:])
    y = b.transpose(b.reshape(y, [0, dim, n]), [0, 2, 1])
    total = n + cls
    if cls:
        y = b.pad(y, [0, cls, 0, 0, 0, 0])
        tok = b.param("cls_token", (1, cls, dim), bound=0.02)
        y = b.add(y, b.pad(tok, [0, 0, 0, 0, n, 0]))
    pos = b.param("pos_embed", (1, total, dim), bound=0.02)
    return b.add(y, pos)


def first_token(b: GraphBuilder, x: str) -> str:
    d = b.channels(x, -1)
    return b.reshape(b.slice(x, 1, 0, 1), [0, d])


def vit(
    b: GraphBuilder,
    shape: Sequence[int],
    patch: int = 16,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    mlp: int = 3072,
    classes: int = 1000,
) -> None:
    """torchvision vit_b_16: conv patch embedding, class token, pre-norm encoder, linear head."""
    tokens = patch_tokens(b, image_input(b, shape), dim, patch)
    y = vit_encoder(b, tokens, layers, heads, mlp)
    b.output(b.gemm(first_token(b, y), classes, name="head"), "logits")


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


# ---------------------------------------------------------------------------------- detection
def _flatten_head(b: GraphBuilder, x: str, per_anchor: int) -> str:
    """(N, A*K, H, W) -> (N, H*W*A, K), the layout detection heads concatenate."""
    return b.reshape(b.transpose(x, [0, 2, 3, 1]), [0, -1, per_anchor])


def ssdlite_mobilenet_v3(b: GraphBuilder, shape: Sequence[int], classes: int = 91) -> None:
    """torchvision ssdlite320_mobilenet_v3_large: C4-expansion + final features, 4 extra blocks,
    depthwise-separable heads (6 anchors per location). Ends at raw scores/box deltas (no NMS)."""
    x = image_input(b, shape)
    # The published COCO weights use the reduced tail (C4 channels halved: 480-ch final conv).
    taps = mobilenet_v3_features(b, x, "large", return_taps=True, reduced_tail=True)
    feats = [taps[1], taps[2]]  # 672-ch expansion at stride 16, 480-ch at stride 32
    y = taps[2]
    for i, cout in enumerate((512, 256, 256, 128)):
        with b.scope(f"extra.{i}"):
            mid = cout // 2
            y = b.conv_act(y, mid, 1, act="relu6", name="pw1")
            y = b.conv_act(y, mid, 3, 2, act="relu6", groups=mid, name="dw")
            y = b.conv_act(y, cout, 1, act="relu6", name="pw2")
        feats.append(y)
    anchors = 6
    scores, boxes = [], []
    for i, f in enumerate(feats):
        c = b.channels(f)
        with b.scope(f"head.cls.{i}"):
            h = b.conv_act(f, c, 3, act="relu6", groups=c, name="dw")
            scores.append(_flatten_head(b, b.conv(h, anchors * classes, 1, name="pw"), classes))
        with b.scope(f"head.reg.{i}"):
            h = b.conv_act(f, c, 3, act="relu6", groups=c, name="dw")
            boxes.append(_flatten_head(b, b.conv(h, anchors * 4, 1, name="pw"), 4))
    b.output(b.concat(scores, 1), "scores")
    b.output(b.concat(boxes, 1), "boxes")


def ssd300_vgg16(b: GraphBuilder, shape: Sequence[int], classes: int = 91) -> None:
    """torchvision ssd300_vgg16: VGG-16 to conv4_3 (L2-normalised), conv5 + dilated fc6/fc7,
    four extra stages, 3x3 heads with [4, 6, 6, 6, 4, 4] anchors. Ends at raw outputs (no NMS)."""
    x = image_input(b, shape)
    cfg: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512]
    y = x
    for i, v in enumerate(cfg):
        if v == "M":
            y = b.maxpool(y, 2, 2)
        elif v == "C":
            y = b.pool("MaxPool", y, 2, 2, ceil=True)
        else:
            y = b.conv_act(y, int(v), 3, name=f"vgg.{i}")
    norm = b.op("ReduceL2", [y], (*b.shape(y)[:1], 1, *b.shape(y)[2:]), axes=[1], keepdims=1)
    conv4_3 = b.mul(
        b.div(y, b.add(norm, b.const(1e-10))), b.param("l2norm.scale", (1, 512, 1, 1), init="ones")
    )
    feats = [conv4_3]
    y = b.maxpool(y, 2, 2)
    for i in range(3):
        y = b.conv_act(y, 512, 3, name=f"vgg.conv5_{i + 1}")
    y = b.maxpool(y, 3, 1, 1)
    y = b.conv_act(y, 1024, 3, pad=6, dilation=6, name="fc6")
    y = b.conv_act(y, 1024, 1, name="fc7")
    feats.append(y)
    for i, (mid, cout, stride, pad) in enumerate(
        ((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0))
    ):
        with b.scope(f"extra.{i}"):
            y = b.conv_act(y, mid, 1, name="conv1")
            y = b.conv_act(y, cout, 3, stride, pad=pad, name="conv2")
        feats.append(y)
    scores, boxes = [], []
    for i, (f, a) in enumerate(zip(feats, (4, 6, 6, 6, 4, 4), strict=True)):
        scores.append(_flatten_head(b, b.conv(f, a * classes, 3, name=f"head.cls.{i}"), classes))
        boxes.append(_flatten_head(b, b.conv(f, a * 4, 3, name=f"head.reg.{i}"), 4))
    b.output(b.concat(scores, 1), "scores")
    b.output(b.concat(boxes, 1), "boxes")


def _yolo_conv(b: GraphBuilder, x: str, c: int, k: int = 1, s: int = 1, name: str = "conv") -> str:
    return b.conv_act(x, c, k, s, act="silu", name=name)


def _yolo_bottleneck(b: GraphBuilder, x: str, c: int, shortcut: bool, k1: int = 1) -> str:
    h = _yolo_conv(b, x, c, k1, name="cv1")
    h = _yolo_conv(b, h, c, 3, name="cv2")
    return b.add(x, h) if shortcut and b.channels(x) == c else h


def _c3(b: GraphBuilder, x: str, c2: int, n: int, shortcut: bool = True) -> str:
    c = c2 // 2
    y1 = _yolo_conv(b, x, c, name="cv1")
    for i in range(n):
        with b.scope(f"m.{i}"):
            y1 = _yolo_bottleneck(b, y1, c, shortcut)
    y2 = _yolo_conv(b, x, c, name="cv2")
    return _yolo_conv(b, b.concat([y1, y2], 1), c2, name="cv3")


def _c2f(b: GraphBuilder, x: str, c2: int, n: int, shortcut: bool = False) -> str:
    c = c2 // 2
    y = _yolo_conv(b, x, 2 * c, name="cv1")
    parts = b.split(y, [c, c], axis=1)
    for i in range(n):
        with b.scope(f"m.{i}"):
            parts.append(_yolo_bottleneck(b, parts[-1], c, shortcut, k1=3))
    return _yolo_conv(b, b.concat(parts, 1), c2, name="cv2")


def _sppf(b: GraphBuilder, x: str, c2: int) -> str:
    c = b.channels(x) // 2
    y = [_yolo_conv(b, x, c, name="cv1")]
    for _ in range(3):
        y.append(b.maxpool(y[-1], 5, 1, 2))
    return _yolo_conv(b, b.concat(y, 1), c2, name="cv2")


def yolov5(
    b: GraphBuilder, shape: Sequence[int], width: float = 0.5, depth: float = 0.33, classes: int = 80
) -> None:
    """Ultralytics YOLOv5 (v6.0+ layout: 6x6 stem conv, C3, SPPF, PANet, 3-anchor Detect).

    Ends at sigmoid scores of the 3 x (80^2 + 40^2 + 20^2) predictions (grid decoding and NMS
    are element-wise post-processing, not part of the graph)."""

    def ch(c: int) -> int:
        return _make_divisible(c * width, 8)

    def nd(n: int) -> int:
        return max(round(n * depth), 1)

    x = image_input(b, shape)
    with b.scope("b0"):
        y = b.conv_act(x, ch(64), 6, 2, pad=2, act="silu")
    with b.scope("b1"):
        y = _yolo_conv(b, y, ch(128), 3, 2)
    with b.scope("b2"):
        y = _c3(b, y, ch(128), nd(3))
    with b.scope("b3"):
        y = _yolo_conv(b, y, ch(256), 3, 2)
    with b.scope("b4"):
        p3 = _c3(b, y, ch(256), nd(6))
    with b.scope("b5"):
        y = _yolo_conv(b, p3, ch(512), 3, 2)
    with b.scope("b6"):
        p4 = _c3(b, y, ch(512), nd(9))
    with b.scope("b7"):
        y = _yolo_conv(b, p4, ch(1024), 3, 2)
    with b.scope("b8"):
        y = _c3(b, y, ch(1024), nd(3))
    with b.scope("b9"):
        y = _sppf(b, y, ch(1024))
    with b.scope("h10"):
        h10 = _yolo_conv(b, y, ch(512))
    with b.scope("h13"):
        y = _c3(b, b.concat([b.upsample(h10, 2), p4], 1), ch(512), nd(3), shortcut=False)
    with b.scope("h14"):
        h14 = _yolo_conv(b, y, ch(256))
    with b.scope("h17"):
        out3 = _c3(b, b.concat([b.upsample(h14, 2), p3], 1), ch(256), nd(3), shortcut=False)
    with b.scope("h18"):
        y = _yolo_conv(b, out3, ch(256), 3, 2)
    with b.scope("h20"):
        out4 = _c3(b, b.concat([y, h14], 1), ch(512), nd(3), shortcut=False)
    with b.scope("h21"):
        y = _yolo_conv(b, out4, ch(512), 3, 2)
    with b.scope("h23"):
        out5 = _c3(b, b.concat([y, h10], 1), ch(1024), nd(3), shortcut=False)
    per = classes + 5
    preds = [
        _flatten_head(b, b.conv(f, 3 * per, 1, name=f"detect.{i}"), per)
        for i, f in enumerate((out3, out4, out5))
    ]
    b.output(b.sigmoid(b.concat(preds, 1)), "predictions")


def yolov8(
    b: GraphBuilder, shape: Sequence[int], width: float = 0.25, depth: float = 0.33, classes: int = 80
) -> None:
    """Ultralytics YOLOv8 detect (C2f, SPPF, anchor-free decoupled head with DFL, reg_max 16).

    Output (N, 4 + classes, anchors): DFL box distances and sigmoid class scores (the dist2bbox
    decode and NMS are post-processing)."""

    def ch(c: int) -> int:
        return _make_divisible(min(c, 1024) * width, 8)

    def nd(n: int) -> int:
        return max(round(n * depth), 1)

    x = image_input(b, shape)
    with b.scope("b0"):
        y = _yolo_conv(b, x, ch(64), 3, 2)
    with b.scope("b1"):
        y = _yolo_conv(b, y, ch(128), 3, 2)
    with b.scope("b2"):
        y = _c2f(b, y, ch(128), nd(3), True)
    with b.scope("b3"):
        y = _yolo_conv(b, y, ch(256), 3, 2)
    with b.scope("b4"):
        p3 = _c2f(b, y, ch(256), nd(6), True)
    with b.scope("b5"):
        y = _yolo_conv(b, p3, ch(512), 3, 2)
    with b.scope("b6"):
        p4 = _c2f(b, y, ch(512), nd(6), True)
    with b.scope("b7"):
        y = _yolo_conv(b, p4, ch(1024), 3, 2)
    with b.scope("b8"):
        y = _c2f(b, y, ch(1024), nd(3), True)
    with b.scope("b9"):
        p5 = _sppf(b, y, ch(1024))
    with b.scope("h12"):
        h12 = _c2f(b, b.concat([b.upsample(p5, 2), p4], 1), ch(512), nd(3))
    with b.scope("h15"):
        out3 = _c2f(b, b.concat([b.upsample(h12, 2), p3], 1), ch(256), nd(3))
    with b.scope("h16"):
        y = _yolo_conv(b, out3, ch(256), 3, 2)
    with b.scope("h18"):
        out4 = _c2f(b, b.concat([y, h12], 1), ch(512), nd(3))
    with b.scope("h19"):
        y = _yolo_conv(b, out4, ch(512), 3, 2)
    with b.scope("h21"):
        out5 = _c2f(b, b.concat([y, p5], 1), ch(1024), nd(3))
    reg_max = 16
    c0 = b.channels(out3)
    c2, c3 = max(16, c0 // 4, reg_max * 4), max(c0, min(classes, 100))
    levels = []
    for i, f in enumerate((out3, out4, out5)):
        with b.scope(f"detect.box.{i}"):
            r = _yolo_conv(b, _yolo_conv(b, f, c2, 3, name="cv0"), c2, 3, name="cv1")
            r = b.conv(r, 4 * reg_max, 1, name="cv2")
        with b.scope(f"detect.cls.{i}"):
            c = _yolo_conv(b, _yolo_conv(b, f, c3, 3, name="cv0"), c3, 3, name="cv1")
            c = b.conv(c, classes, 1, name="cv2")
        levels.append(b.reshape(b.concat([r, c], 1), [0, 4 * reg_max + classes, -1]))
    y = b.concat(levels, 2)
    box, cls = b.split(y, [4 * reg_max, classes], axis=1)
    n = int(b.shape(y)[2])
    dist = b.softmax(b.transpose(b.reshape(box, [0, 4, reg_max, n]), [0, 2, 1, 3]), 1)
    dist = b.reshape(b.conv(dist, 1, 1, bias=False, name="dfl"), [0, 4, n])
    b.output(b.concat([dist, b.sigmoid(cls)], 1), "predictions")


# ---------------------------------------------------------------------------------- segmentation
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
    for i, (cin, k, exp, cout, se, act, stride) in enumerate(_MBV3_LARGE):
        with b.scope(f"features.{i + 1}"):
            dil = 2 if i >= 12 else 1
            s = 1 if dil > 1 else stride
            h = y
            if exp != cin:
                h = b.conv_act(h, exp, 1, act=act, name="expand")
            h = b.conv_act(h, exp, k, s, act=act, groups=exp, dilation=dil, name="dw")
            if se:
                h = squeeze_excite(b, h, _make_divisible(exp // 4, 8))
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


# ---------------------------------------------------------------------------------- video
def video_resnet(b: GraphBuilder, shape: Sequence[int], kind: str = "r2plus1d", classes: int = 400) -> None:
    """torchvision video ResNet-18 family on (N, 3, T, H, W) clips: ``r3d`` (3x3x3 convs), ``mc3``
    (3-D only in layer1) and ``r2plus1d`` ((1x3x3 spatial + 3x1x1 temporal) with midplanes chosen
    to match the 3-D parameter count)."""
    x = b.input("pixel_values", (BATCH, *[int(d) for d in shape[1:]]))
    if kind == "r2plus1d":
        y = b.conv_act(x, 45, (1, 7, 7), (1, 2, 2), pad=(0, 3, 3), name="stem.s")
        y = b.conv_act(y, 64, (3, 1, 1), 1, pad=(1, 0, 0), name="stem.t")
    else:
        y = b.conv_act(x, 64, (3, 7, 7), (1, 2, 2), pad=(1, 3, 3), name="stem")
    inplanes = 64
    for stage, planes in enumerate((64, 128, 256, 512)):
        three_d = kind == "r3d" or (kind == "mc3" and stage == 0)
        for i in range(2):
            with b.scope(f"layer{stage + 1}.{i}"):
                s = 2 if stage > 0 and i == 0 else 1
                identity = y
                if s != 1 or inplanes != planes:
                    ds = (s, s, s) if kind != "mc3" or three_d else (1, s, s)
                    identity = b.conv_act(y, planes, 1, ds, act=None, name="downsample")
                h = y
                for j in range(2):
                    cin = inplanes if j == 0 else planes
                    st = s if j == 0 else 1
                    act = "relu" if j == 0 else None
                    if kind == "r2plus1d":
                        mid = (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)
                        h = b.conv_act(h, mid, (1, 3, 3), (1, st, st), pad=(0, 1, 1), name=f"conv{j + 1}.s")
                        h = b.conv_act(
                            h, planes, (3, 1, 1), (st, 1, 1), pad=(1, 0, 0), act=act, name=f"conv{j + 1}.t"
                        )
                    elif three_d:
                        h = b.conv_act(h, planes, 3, st, act=act, name=f"conv{j + 1}")
                    else:
                        h = b.conv_act(
                            h, planes, (1, 3, 3), (1, st, st), pad=(0, 1, 1), act=act, name=f"conv{j + 1}"
                        )
                    del cin
                y = b.relu(b.add(h, identity))
            inplanes = planes
    b.output(b.gemm(b.flatten(b.global_avgpool(y)), classes, name="fc"), "logits")


# ---------------------------------------------------------------------------------- anomaly detection
def conv_autoencoder(b: GraphBuilder, shape: Sequence[int], latent: int = 100) -> None:
    """Convolutional autoencoder of Bergmann et al. (AE-SSIM, VISAPP 2019, Table 1): 128x128
    grey patches, 9 conv layers to a latent vector, mirrored transposed-conv decoder; leaky ReLU 0.2.
    One inference = one reconstruction (the anomaly map is the SSIM/L2 residual, element-wise)."""
    x = image_input(b, shape)
    enc = [
        (32, 4, 2, 1),
        (32, 4, 2, 1),
        (32, 3, 1, 1),
        (64, 4, 2, 1),
        (64, 3, 1, 1),
        (128, 4, 2, 1),
        (64, 3, 1, 1),
        (32, 3, 1, 1),
    ]
    y = x
    for i, (c, k, s, p) in enumerate(enc):
        y = b.leaky_relu(b.conv(y, c, k, s, pad=p, name=f"enc{i + 1}"), 0.2)
    y = b.conv(y, latent, 8, 1, pad=0, name="enc9")
    # Decoder mirrors the encoder; stride-2 layers are 4x4 transposed convolutions.
    y = b.leaky_relu(b.conv_transpose(y, 32, 8, 1, name="dec1"), 0.2)
    for i, (c, k, s, p) in enumerate(
        [
            (64, 3, 1, 1),
            (128, 3, 1, 1),
            (64, 4, 2, 1),
            (64, 3, 1, 1),
            (32, 4, 2, 1),
            (32, 3, 1, 1),
            (32, 4, 2, 1),
        ]
    ):
        if s == 2:
            y = b.conv_transpose(y, c, k, s, pad=p, name=f"dec{i + 2}")
        else:
            y = b.conv(y, c, k, s, pad=p, name=f"dec{i + 2}")
        y = b.leaky_relu(y, 0.2)
    y = b.conv_transpose(y, int(shape[1]), 4, 2, pad=1, name="dec9")
    b.output(b.sigmoid(y), "reconstruction")


# ---------------------------------------------------------------------------------- latent diffusion U-Net
def _sd_resnet(b: GraphBuilder, x: str, temb: str, cout: int) -> str:
    h = b.conv(b.silu(b.group_norm(x, 32, name="norm1")), cout, 3, name="conv1")
    t = b.linear(b.silu(temb), cout, name="time_emb_proj")
    h = b.add(h, b.reshape(t, [0, cout, 1, 1]))
    h = b.conv(b.silu(b.group_norm(h, 32, name="norm2")), cout, 3, name="conv2")
    skip = x if b.channels(x) == cout else b.conv(x, cout, 1, name="conv_shortcut")
    return b.add(skip, h)


def _sd_transformer(b: GraphBuilder, x: str, context: str, heads: int = 8) -> str:
    shape = b.shape(x)
    c, hh, ww = int(shape[1]), int(shape[2]), int(shape[3])
    with b.scope("attn"):
        h = b.conv(b.group_norm(x, 32, eps=1e-6, name="norm"), c, 1, name="proj_in")
        t = b.transpose(b.reshape(h, [0, c, hh * ww]), [0, 2, 1])
        t = b.add(t, b.mha(b.layer_norm(t, name="norm1"), heads, qkv_bias=False, name="attn1"))
        t = b.add(
            t, b.mha(b.layer_norm(t, name="norm2"), heads, context=context, qkv_bias=False, name="attn2")
        )
        with b.scope("ff"):
            n = b.layer_norm(t, name="norm3")
            proj = b.linear(n, 8 * c, name="geglu")
            val, gate = b.split(proj, [4 * c, 4 * c], axis=-1)
            t = b.add(t, b.linear(b.mul(val, b.gelu(gate)), c, name="out"))
        h = b.reshape(b.transpose(t, [0, 2, 1]), [0, c, hh, ww])
        return b.add(x, b.conv(h, c, 1, name="proj_out"))


def sd_unet(
    b: GraphBuilder,
    shape: Sequence[int],
    channels: Sequence[int] = (320, 640, 1280, 1280),
    attention: Sequence[bool] = (True, True, True, False),
    layers: int = 2,
    mid_block: bool = True,
    context_len: int = 77,
    context_dim: int = 768,
) -> None:
    """Stable-Diffusion-v1 U-Net (diffusers UNet2DConditionModel layout): ResNet blocks with a
    time embedding, spatial transformers (self-attention, cross-attention to the text encoding,
    GEGLU feed-forward). One inference = ONE denoising step at batch 1 (classifier-free guidance
    doubles it; a 25-step sampler runs it 25 or 50 times). The default arguments are SD v1.4;
    BK-SDM variants drop blocks (fewer layers, no mid block, fewer stages)."""
    sample = b.input("sample", (BATCH, *[int(d) for d in shape[1:]]))
    timestep = b.input("timestep", (BATCH,))
    context = b.input("encoder_hidden_states", (BATCH, context_len, context_dim))
    with b.scope("time"):
        half = channels[0] // 2
        freqs = np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float64) / half).astype(np.float32)
        t = b.op("Unsqueeze", [timestep, b.const(np.array([1]))], (BATCH, 1))
        ang = b.mul(t, b.const(freqs.reshape(1, half)))
        emb = b.concat([b.unary("Cos", ang), b.unary("Sin", ang)], 1)
        temb = b.linear(
            b.silu(b.linear(emb, 4 * channels[0], name="linear_1")), 4 * channels[0], name="linear_2"
        )
    y = b.conv(sample, channels[0], 3, name="conv_in")
    skips = [y]
    for i, (c, attn) in enumerate(zip(channels, attention, strict=True)):
        for j in range(layers):
            with b.scope(f"down{i}.{j}"):
                y = _sd_resnet(b, y, temb, c)
                if attn:
                    y = _sd_transformer(b, y, context)
            skips.append(y)
        if i < len(channels) - 1:
            y = b.conv(y, c, 3, 2, name=f"down{i}.downsample")
            skips.append(y)
    if mid_block:
        with b.scope("mid"):
            y = _sd_resnet(b, y, temb, channels[-1])
            y = _sd_transformer(b, y, context)
            y = _sd_resnet(b, y, temb, channels[-1])
    for i, (c, attn) in enumerate(zip(reversed(channels), reversed(attention), strict=True)):
        for j in range(layers + 1):
            with b.scope(f"up{i}.{j}"):
                y = _sd_resnet(b, b.concat([y, skips.pop()], 1), temb, c)
                if attn:
                    y = _sd_transformer(b, y, context)
        if i < len(channels) - 1:
            y = b.conv(b.upsample(y, 2), c, 3, name=f"up{i}.upsample")
    y = b.conv(b.silu(b.group_norm(y, 32, name="norm_out")), int(shape[1]), 3, name="conv_out")
    b.output(y, "noise_pred")


def patchcore(b: GraphBuilder, shape: Sequence[int], memory: int = 16385) -> None:
    """PatchCore (Roth et al., CVPR 2022; anomalib layout): WideResNet-50-2 layer2 + layer3
    features, 3x3 local average, layer3 upsampled to 28x28, 1536-d patch embeddings, squared
    distance to a coreset memory bank (10 % of a 209-image MVTec category: 16,385 patches; stored
    as weights), nearest-neighbour score per patch, image score = max. One inference = one image."""
    x = image_input(b, shape)
    stages = resnet_backbone(b, x, [3, 4, 6], True, return_stages=True, width_factor=2)
    l2, l3 = stages[1], stages[2]
    l2 = b.avgpool(l2, 3, 1, 1)
    l3 = b.avgpool(l3, 3, 1, 1)
    hw = [int(d) for d in b.shape(l2)[2:]]
    l3 = b.upsample(l3, [hw[0] // int(b.shape(l3)[2]), hw[1] // int(b.shape(l3)[3])], mode="linear")
    emb = b.concat([l2, l3], 1)
    dim = b.channels(emb)
    n = hw[0] * hw[1]
    patches = b.transpose(b.reshape(emb, [0, dim, n]), [0, 2, 1])  # (N, P, D)
    bank_t = b.param("memory_bank_t", (dim, memory), bound=1.0)
    bank_sq = b.param("memory_bank_sqnorm", (memory,), init="ones")
    cross = b.matmul(patches, bank_t)
    sq = b.op("ReduceSumSquare", [patches], (BATCH, n, 1), axes=[2], keepdims=1)
    dist = b.add(b.sub(sq, b.mul(cross, b.const(np.float32(2.0)))), bank_sq)
    nearest = b.op("ReduceMin", [dist], (BATCH, n), axes=[2], keepdims=0)
    scores = b.unary("Sqrt", b.relu(nearest))
    b.output(b.reshape(scores, [0, hw[0], hw[1]]), "anomaly_map")
    b.output(b.op("ReduceMax", [scores], (BATCH,), axes=[1], keepdims=0), "anomaly_score")
