"""Image and video architectures, one module per family: ``cnn`` (CNN classifiers), ``vit``,
``detection``, ``detr``, ``segmentation``, ``video``, ``anomaly`` and ``diffusion``; ``image`` holds
the image input and classification head they share.

Layer configurations follow the reference implementations named in each docstring (torchvision
unless stated); BatchNorm is folded into the preceding convolution (see ``layers``). The builders
are re-exported here for the registry in ``builders``.
"""

from __future__ import annotations

from sustainml.onnxgraphs.vision.anomaly import conv_autoencoder, patchcore
from sustainml.onnxgraphs.vision.cnn import convnext, efficientnet_b0, mobilenet_v2, mobilenet_v3, resnet
from sustainml.onnxgraphs.vision.detection import (
    retinanet_resnet50_fpn_v2,
    ssd300_vgg16,
    ssdlite_mobilenet_v3,
    yolov5,
    yolov8,
)
from sustainml.onnxgraphs.vision.detr import detr
from sustainml.onnxgraphs.vision.diffusion import sd_unet
from sustainml.onnxgraphs.vision.sam import sam
from sustainml.onnxgraphs.vision.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3, unet
from sustainml.onnxgraphs.vision.video import video_resnet
from sustainml.onnxgraphs.vision.vit import vit

__all__ = [
    "conv_autoencoder",
    "convnext",
    "deeplabv3_resnet50",
    "detr",
    "efficientnet_b0",
    "lraspp_mobilenet_v3",
    "mobilenet_v2",
    "mobilenet_v3",
    "patchcore",
    "resnet",
    "retinanet_resnet50_fpn_v2",
    "sam",
    "sd_unet",
    "ssd300_vgg16",
    "ssdlite_mobilenet_v3",
    "unet",
    "video_resnet",
    "vit",
    "yolov5",
    "yolov8",
]
