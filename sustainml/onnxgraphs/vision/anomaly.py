"""Anomaly detectors: a convolutional autoencoder (AE-SSIM) and PatchCore."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.cnn import resnet_backbone
from sustainml.onnxgraphs.vision.image import image_input


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
