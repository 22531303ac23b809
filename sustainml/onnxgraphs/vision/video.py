"""Video classifiers: the torchvision video ResNet-18 family (R3D, MC3, R(2+1)D)."""

from __future__ import annotations

from collections.abc import Sequence

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder


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
