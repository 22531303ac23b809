"""Layers for the graph builders: convolution and pooling, dense layers and norms, attention.

``GraphBuilder`` adds them to ``graph.BaseGraphBuilder`` (tensors, shapes, element-wise ops,
writing); builders describe an architecture layer by layer (``conv``, ``linear``, ``attention`` ...).

Inference-time conventions (documented once here, used by every builder):
- BatchNorm is folded into the preceding convolution (conv bias), as inference exports do.
- GELU is the exact erf form (the tanh approximation has the same shapes and MACs).
- Attention is written out as MatMul/Softmax/MatMul, so the analyser sees its MACs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import TensorProto

from sustainml.onnxgraphs.graph import BaseGraphBuilder, GraphError, WeightsMode


class GraphBuilder(BaseGraphBuilder):
    """A graph builder with the layers every architecture is described with."""

    # ------------------------------------------------------------------ convolution and pooling
    @staticmethod
    def _conv_out(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
        return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1

    def conv(
        self,
        x: str,
        cout: int,
        k: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        pad: int | Sequence[int] | None = None,
        groups: int = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        name: str = "conv",
    ) -> str:
        """N-d convolution (1-d, 2-d or 3-d from the input rank); ``pad=None`` means 'same' for odd k."""
        shape = self.shape(x)
        nd = len(shape) - 2
        ks = [k] * nd if isinstance(k, int) else list(k)
        ss = [stride] * nd if isinstance(stride, int) else list(stride)
        ds = [dilation] * nd if isinstance(dilation, int) else list(dilation)
        if pad is None:
            ps = [d * (kk - 1) // 2 for kk, d in zip(ks, ds, strict=True)]
        else:
            ps = [pad] * nd if isinstance(pad, int) else list(pad)
        pads = ps + ps if len(ps) == nd else ps
        cin = self.channels(x)
        if cin % groups or cout % groups:
            raise GraphError(f"{self.name}: conv {cin}->{cout} not divisible by groups={groups}")
        w = self.param(f"{name}.weight", (cout, cin // groups, *ks))
        ins = [x, w]
        if bias:
            ins.append(self.param(f"{name}.bias", (cout,), init="zeros"))
        spatial = [
            self._conv_out(int(shape[2 + i]), ks[i], ss[i], pads[i], pads[nd + i], ds[i]) for i in range(nd)
        ]
        return self.op(
            "Conv",
            ins,
            (shape[0], cout, *spatial),
            kernel_shape=ks,
            strides=ss,
            pads=pads,
            dilations=ds,
            group=groups,
        )

    def conv_act(
        self,
        x: str,
        cout: int,
        k: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        act: str | None = "relu",
        groups: int = 1,
        pad: int | Sequence[int] | None = None,
        dilation: int | Sequence[int] = 1,
        name: str = "conv",
    ) -> str:
        """Conv + folded BatchNorm + activation (the inference form of Conv-BN-Act)."""
        y = self.conv(x, cout, k, stride, pad=pad, groups=groups, dilation=dilation, bias=True, name=name)
        return self.act(y, act)

    def conv_transpose(
        self, x: str, cout: int, k: int, stride: int, pad: int = 0, bias: bool = True, name: str = "deconv"
    ) -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        cin = self.channels(x)
        w = self.param(f"{name}.weight", (cin, cout, *([k] * nd)), fan_in=cout * k**nd)
        ins = [x, w]
        if bias:
            ins.append(self.param(f"{name}.bias", (cout,), init="zeros"))
        spatial = [(int(shape[2 + i]) - 1) * stride - 2 * pad + k for i in range(nd)]
        return self.op(
            "ConvTranspose",
            ins,
            (shape[0], cout, *spatial),
            kernel_shape=[k] * nd,
            strides=[stride] * nd,
            pads=[pad] * (2 * nd),
        )

    def pool(
        self,
        op_type: str,
        x: str,
        k: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        pad: int | Sequence[int] = 0,
        ceil: bool = False,
    ) -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        ks = [k] * nd if isinstance(k, int) else list(k)
        st = ks if stride is None else ([stride] * nd if isinstance(stride, int) else list(stride))
        ps = [pad] * nd if isinstance(pad, int) else list(pad)
        spatial = []
        for i in range(nd):
            num = int(shape[2 + i]) + 2 * ps[i] - ks[i]
            spatial.append((-(-num // st[i]) if ceil else num // st[i]) + 1)
        attrs: dict[str, Any] = {"kernel_shape": ks, "strides": st, "pads": ps + ps}
        if ceil:
            attrs["ceil_mode"] = 1
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0
        return self.op(op_type, [x], (shape[0], shape[1], *spatial), **attrs)

    def maxpool(
        self, x: str, k: int | Sequence[int], stride: int | Sequence[int] | None = None, pad: int = 0
    ) -> str:
        return self.pool("MaxPool", x, k, stride, pad)

    def avgpool(
        self, x: str, k: int | Sequence[int], stride: int | Sequence[int] | None = None, pad: int = 0
    ) -> str:
        return self.pool("AveragePool", x, k, stride, pad)

    def global_avgpool(self, x: str) -> str:
        shape = self.shape(x)
        return self.op("GlobalAveragePool", [x], (shape[0], shape[1], *([1] * (len(shape) - 2))))

    def global_maxpool(self, x: str) -> str:
        shape = self.shape(x)
        return self.op("GlobalMaxPool", [x], (shape[0], shape[1], *([1] * (len(shape) - 2))))

    def upsample(self, x: str, scale: int | Sequence[int], mode: str = "nearest") -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        sc = [scale] * nd if isinstance(scale, int) else list(scale)
        scales = self.const(np.array([1.0, 1.0, *sc], dtype=np.float32))
        spatial = [int(shape[2 + i]) * sc[i] for i in range(nd)]
        attrs: dict[str, Any] = {"mode": mode}
        if mode == "nearest":
            attrs["nearest_mode"] = "floor"
            attrs["coordinate_transformation_mode"] = "asymmetric"
        return self.op("Resize", [x, "", scales], (shape[0], shape[1], *spatial), **attrs)

    def resize_to(self, x: str, size: Sequence[int], mode: str = "linear") -> str:
        shape = self.shape(x)
        # 'sizes' must carry the batch: build it from Shape(x)[0] so batch stays symbolic.
        batch = self.op("Shape", [x], (1,), dtype=TensorProto.INT64, start=0, end=1)
        tail = self.const(np.array([int(shape[1]), *size], dtype=np.int64))
        full = self.op("Concat", [batch, tail], (len(size) + 2,), dtype=TensorProto.INT64, axis=0)
        return self.op("Resize", [x, "", "", full], (shape[0], shape[1], *size), mode=mode)

    # ------------------------------------------------------------------ dense layers and norms
    def linear(self, x: str, dout: int, bias: bool = True, name: str = "linear") -> str:
        """y = x W + b on the last axis (MatMul + Add, as exporters write it)."""
        din = self.channels(x, -1)
        w = self.param(f"{name}.weight", (din, dout), fan_in=din)
        y = self.matmul(x, w)
        if bias:
            y = self.add(y, self.param(f"{name}.bias", (dout,), init="zeros"))
        return y

    def gemm(self, x: str, dout: int, name: str = "fc") -> str:
        """Classifier head on a 2-d (batch, features) tensor: one Gemm with bias."""
        shape = self.shape(x)
        din = int(shape[1])
        w = self.param(f"{name}.weight", (dout, din), fan_in=din)
        b = self.param(f"{name}.bias", (dout,), init="zeros")
        return self.op("Gemm", [x, w, b], (shape[0], dout), transB=1)

    def layer_norm(self, x: str, eps: float = 1e-5, name: str = "ln", bias: bool = True) -> str:
        d = self.channels(x, -1)
        ins = [x, self.param(f"{name}.weight", (d,), init="ones")]
        if bias:
            ins.append(self.param(f"{name}.bias", (d,), init="zeros"))
        return self.op("LayerNormalization", ins, self.shape(x), axis=-1, epsilon=eps)

    def rms_norm(self, x: str, eps: float = 1e-6, name: str = "rmsnorm") -> str:
        d = self.channels(x, -1)
        sq = self.mul(x, x)
        ms = self.reduce_mean(sq, [-1], keepdims=True)
        inv = self.unary("Sqrt", self.add(ms, self.const(np.float32(eps))))
        y = self.div(x, inv)
        return self.mul(y, self.param(f"{name}.weight", (d,), init="ones"))

    def group_norm(self, x: str, groups: int, eps: float = 1e-5, name: str = "gn") -> str:
        """GroupNorm as exporters write it for opset < 21: reshape + InstanceNorm + affine."""
        shape = self.shape(x)
        c = int(shape[1])
        rest = math.prod(int(d) for d in shape[2:])
        r = self.reshape(x, [0, groups, -1]) if rest else x
        ones = self.const(np.ones(groups, dtype=np.float32))
        zeros = self.const(np.zeros(groups, dtype=np.float32))
        n = self.op("InstanceNormalization", [r, ones, zeros], self.shape(r), epsilon=eps)
        back = self.reshape(n, [0, c, *[int(d) for d in shape[2:]]])
        gamma = self.param(f"{name}.weight", (c, *([1] * (len(shape) - 2))), init="ones")
        beta = self.param(f"{name}.bias", (c, *([1] * (len(shape) - 2))), init="zeros")
        return self.add(self.mul(back, gamma), beta)

    def batch_norm(self, x: str, name: str = "bn") -> str:
        """An explicit BatchNorm (only where it cannot be folded, e.g. after a concat or pooling)."""
        c = self.channels(x)
        ins = [x]
        for part, init in (
            ("weight", "ones"),
            ("bias", "zeros"),
            ("running_mean", "zeros"),
            ("running_var", "ones"),
        ):
            ins.append(self.param(f"{name}.{part}", (c,), init=init))  # type: ignore[arg-type]
        return self.op("BatchNormalization", ins, self.shape(x), epsilon=1e-5)

    # ------------------------------------------------------------------ attention
    def heads(self, x: str, n_heads: int) -> str:
        """(B, L, D) -> (B, H, L, D/H)."""
        d = self.channels(x, -1)
        r = self.reshape(x, [0, 0, n_heads, d // n_heads])
        return self.transpose(r, [0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        """(B, H, L, Dh) -> (B, L, H*Dh)."""
        shape = self.shape(x)
        t = self.transpose(x, [0, 2, 1, 3])
        return self.reshape(t, [0, 0, int(shape[1]) * int(shape[3])])

    def sdpa(
        self,
        q: str,
        k: str,
        v: str,
        causal: bool = False,
        bias: str | None = None,
        scale: float | None = None,
    ) -> str:
        """Scaled dot-product attention on (B, H, L, Dh) tensors."""
        dh = self.channels(q, -1)
        qs = self.mul(q, self.const(np.float32(scale if scale is not None else 1.0 / math.sqrt(dh))))
        kt = self.transpose(k, [0, 1, 3, 2])
        scores = self.matmul(qs, kt)
        if bias is not None:
            scores = self.add(scores, bias)
        if causal:
            lq, lk = int(self.shape(q)[2]), int(self.shape(k)[2])
            mask = np.tril(np.ones((lq, lk), dtype=np.bool_), k=lk - lq)
            scores = self.op(
                "Where",
                [self.const(mask, "causal_mask"), scores, self.const(np.float32(-1e9))],
                self.shape(scores),
            )
        probs = self.softmax(scores, -1)
        return self.matmul(probs, v)

    def mha(
        self,
        x: str,
        n_heads: int,
        context: str | None = None,
        causal: bool = False,
        qkv_bias: bool = True,
        out_bias: bool = True,
        k_bias: bool | None = None,
        fused_qkv: bool = False,
        bias: str | None = None,
        scale: float | None = None,
        value: str | None = None,
        name: str = "attn",
    ) -> str:
        """Multi-head attention with separate (or fused) Q/K/V projections and an output projection.

        ``value`` feeds the V projection when it differs from the keys' input (DETR adds position
        encodings to queries and keys only)."""
        d = self.channels(x, -1)
        with self.scope(name):
            if fused_qkv and context is None and value is None:
                qkv = self.linear(x, 3 * d, bias=qkv_bias, name="qkv")
                q, k, v = self.split(qkv, [d, d, d], axis=-1)
            else:
                src = x if context is None else context
                q = self.linear(x, d, bias=qkv_bias, name="q")
                k = self.linear(src, d, bias=qkv_bias if k_bias is None else k_bias, name="k")
                v = self.linear(src if value is None else value, d, bias=qkv_bias, name="v")
            o = self.sdpa(
                self.heads(q, n_heads), self.heads(k, n_heads), self.heads(v, n_heads), causal, bias, scale
            )
            return self.linear(self.merge_heads(o), d, bias=out_bias, name="out")

    def ffn(self, x: str, hidden: int, act: str = "gelu", bias: bool = True, name: str = "ffn") -> str:
        d = self.channels(x, -1)
        with self.scope(name):
            h = self.act(self.linear(x, hidden, bias=bias, name="fc1"), act)
            return self.linear(h, d, bias=bias, name="fc2")

    def gated_ffn(self, x: str, hidden: int, act: str = "silu", bias: bool = False, name: str = "mlp") -> str:
        """SwiGLU/GEGLU: down(act(gate(x)) * up(x))."""
        d = self.channels(x, -1)
        with self.scope(name):
            g = self.act(self.linear(x, hidden, bias=bias, name="gate"), act)
            u = self.linear(x, hidden, bias=bias, name="up")
            return self.linear(self.mul(g, u), d, bias=bias, name="down")


__all__ = ["GraphBuilder", "WeightsMode"]
