"""Validate a user's ONNX model before anything else touches it.

``load_user_model(source, allowed_dirs, max_bytes)`` accepts a path (``extra_data.model_path``) or
serialized bytes (``raw_model``) and checks, in order: confinement of the path (symlinks resolved,
no traversal outside the configured directories, external-data files too), the size limit (model
plus external data, checked before reading), that it parses, ``onnx.checker`` and strict shape
inference. Every failure raises ``UserModelError`` with a message that says what to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]


class UserModelError(ValueError):
    """The user's model is refused; the message says why."""


@dataclass(frozen=True)
class UserModel:
    model: onnx.ModelProto  # graph only: external weights are not loaded
    path: Path | None  # resolved path, None for raw bytes
    size_bytes: int  # model + external data
    sha256: str  # of the model file / bytes (not of external data)
    external_data: tuple[Path, ...] = ()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _check(model: onnx.ModelProto, where: str, path: Path | None = None) -> None:
    try:
        # From a path the checker also verifies external data files next to the model.
        onnx.checker.check_model(str(path) if path is not None else model)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        raise UserModelError(f"{where}: not a valid ONNX model: {exc}") from exc
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # onnx.shape_inference.InferenceError
        raise UserModelError(f"{where}: shape inference failed: {exc}") from exc


def _external_locations(model: onnx.ModelProto) -> list[str]:
    seen: list[str] = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for kv in tensor.external_data:
                if kv.key == "location" and kv.value not in seen:
                    seen.append(kv.value)
    return seen


def load_user_model(
    source: str | Path | bytes | bytearray, allowed_dirs: Sequence[str | Path], max_bytes: int
) -> UserModel:
    """Load and validate a user-supplied ONNX model (see the module docstring)."""
    if max_bytes <= 0:
        raise UserModelError(f"max_bytes must be > 0, got {max_bytes}")
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if len(data) > max_bytes:
            raise UserModelError(f"raw_model is {len(data)} bytes, above the limit of {max_bytes} bytes")
        try:
            model = onnx.load_from_string(data)
        except DecodeError as exc:
            raise UserModelError(f"raw_model: not a serialized ONNX ModelProto ({exc})") from exc
        if _external_locations(model):
            raise UserModelError("raw_model references external data files; send a self-contained model")
        _check(model, "raw_model")
        return UserModel(model, None, len(data), hashlib.sha256(data).hexdigest())

    roots = [Path(d).expanduser().resolve() for d in allowed_dirs]
    if not roots:
        raise UserModelError("no model directories are configured: user model paths are disabled")
    raw = Path(source).expanduser()
    try:
        path = raw.resolve(strict=True)
    except FileNotFoundError:
        raise UserModelError(f"model_path {str(source)!r} does not exist") from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permission problems
        raise UserModelError(f"model_path {str(source)!r} cannot be resolved: {exc}") from exc
    if not _inside(path, roots):
        raise UserModelError(
            f"model_path {str(source)!r} resolves to {path}, outside the allowed directories "
            f"({', '.join(str(r) for r in roots)})"
        )
    if not path.is_file():
        raise UserModelError(f"model_path {str(source)!r} is not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserModelError(f"model_path {path.name}: {size} bytes, above the limit of {max_bytes} bytes")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError) as exc:
        raise UserModelError(f"model_path {path.name}: cannot be read as ONNX ({exc})") from exc
    externals: list[Path] = []
    total = size
    for loc in _external_locations(model):
        candidate = path.parent / loc
        try:
            resolved = candidate.resolve(strict=True)
        except FileNotFoundError:
            raise UserModelError(f"model_path {path.name}: external data {loc!r} is missing") from None
        if not _inside(resolved, [path.parent]) or not _inside(resolved, roots):
            raise UserModelError(
                f"model_path {path.name}: external data {loc!r} points outside the model directory"
            )
        total += resolved.stat().st_size
        externals.append(resolved)
    if total > max_bytes:
        raise UserModelError(
            f"model_path {path.name}: {total} bytes with its external data, "
            f"above the limit of {max_bytes} bytes"
        )
    _check(model, f"model_path {path.name}", path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return UserModel(model, path, total, digest, tuple(externals))


__all__ = ["UserModel", "UserModelError", "load_user_model"]
