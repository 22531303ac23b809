"""Object detectors: SSDlite (MobileNet v3), SSD300 (VGG-16), RetinaNet v2 (ResNet-50 FPN), YOLOv5
and YOLOv8; the graphs end before non-maximum suppression (post-processing, outside the graph).
DETR, a transformer detector without anchors or NMS, is in ``detr``."""

from __future__ import annotations

from collections.abc import Sequence

from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.cnn import make_divisible, mobilenet_v3_features, resnet_backbone
from sustainml.onnxgraphs.vision.image import image_input


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


def retinanet_resnet50_fpn_v2(b: GraphBuilder, shape: Sequence[int], classes: int = 91) -> None:
    """torchvision retinanet_resnet50_fpn_v2: ResNet-50 (BatchNorm folded), FPN on C3-C5 with P6
    from C5 and P7 from ReLU(P6), and one classification and one box head shared by the five
    levels (four 3x3 conv + GroupNorm(32) + ReLU blocks each, 9 anchors per location)."""
    x = image_input(b, shape)
    c3, c4, c5 = resnet_backbone(b, x, [3, 4, 6, 3], True, return_stages=True)[1:]
    width = 256
    with b.scope("fpn"):
        laterals = [b.conv(c, width, 1, name=f"inner{i}") for i, c in enumerate((c3, c4, c5))]
        top = laterals[2]
        merged = [top]
        for lateral in reversed(laterals[:2]):
            sizes = [int(d) for d in b.shape(lateral)[2:]]
            # torchvision's top-down path: nearest upsampling to the lateral's size, then add.
            top = b.add(lateral, b.resize_to(top, sizes, mode="nearest"))
            merged.insert(0, top)
        levels = [b.conv(m, width, 3, name=f"layer{i}") for i, m in enumerate(merged)]
        p6 = b.conv(c5, width, 3, 2, name="p6")
        levels += [p6, b.conv(b.relu(p6), width, 3, 2, name="p7")]
    anchors = 9
    outputs: dict[str, list[str]] = {"scores": [], "boxes": []}
    for f in levels:
        for head, per_anchor in (("scores", classes), ("boxes", 4)):
            with b.shared(f"head.{head}"), b.scope(f"head.{head}"):
                h = f
                for i in range(4):
                    h = b.conv(h, width, 3, bias=False, name=f"conv{i}")
                    h = b.relu(b.group_norm(h, 32, name=f"gn{i}"))
                h = b.conv(h, anchors * per_anchor, 3, name="out")
            outputs[head].append(_flatten_head(b, h, per_anchor))
    for head, parts in outputs.items():
        b.output(b.concat(parts, 1), head)


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
        return make_divisible(c * width, 8)

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
        return make_divisible(min(c, 1024) * width, 8)

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
