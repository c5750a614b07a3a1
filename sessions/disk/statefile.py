"""The one state-file format: safetensors tensors plus a JSON header.

A state is named tensors and a JSON-able ``meta``. On disk (checkpoints,
finished paths in results/paths/, a minimum's training state) and between
processes (bytes on the worker queues) it is a safetensors file whose
metadata holds ``meta`` as JSON under one key, plus optional string tags.
Each kind of file keeps its key: ``nebtui.meta`` (checkpoints, tagged
``nebtui.checkpoint``), ``meta`` (connection states), ``nebtui`` (training
states). Reading goes through safetensors' own parser and never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from sessions.disk.atomic import write_atomic


class StateFileError(ValueError):
    """A state file (or its bytes) cannot be read: ``str()`` names it and says why."""


def _standalone(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """CPU, contiguous tensors that own their storage alone (safetensors refuses shared storage)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state entries must be str -> Tensor, got {name!r}: {type(tensor).__name__}")
        t = tensor.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        whole = t.storage_offset() == 0 and t.numel() * t.element_size() == storage.nbytes()
        if storage.data_ptr() in seen or not whole:
            t = t.clone()
            storage = t.untyped_storage()
        seen.add(storage.data_ptr())
        out[name] = t
    return out


def to_bytes(
    tensors: Mapping[str, Any], meta: Any, *, key: str, tags: Mapping[str, str] | None = None, sort_keys: bool = False
) -> bytes:
    """The state as safetensors bytes; a meta that is not JSON-able is a ValueError."""
    from safetensors.torch import save

    try:
        meta_json = json.dumps(meta, sort_keys=sort_keys)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the meta is not JSON-able ({exc})") from None
    return save(_standalone(tensors), metadata={**(tags or {}), key: meta_json})


def write(
    path: Path,
    tensors: Mapping[str, Any],
    meta: Any,
    *,
    key: str,
    tags: Mapping[str, str] | None = None,
    sort_keys: bool = False,
    temp_prefix: str | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Write the state to ``path`` atomically and durably (sessions.disk.atomic.write_atomic)."""
    data = to_bytes(tensors, meta, key=key, tags=tags, sort_keys=sort_keys)
    write_atomic(Path(path), data, temp_prefix=temp_prefix, before_replace=before_replace)


def read(path: Path, *, key: str) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """(tensors, meta, the header's other entries) of the state file at ``path``.
    Missing, damaged or foreign files are a StateFileError naming the file."""
    return _read(str(path), Path(path).name, key)


def from_bytes(data: bytes, *, key: str) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """``read`` for a state held in memory (as ``to_bytes`` made it). safetensors
    loads and checks the tensors; the metadata comes from the same header (the
    format: 8 bytes of little-endian length, then that many bytes of JSON)."""

    def load() -> tuple[dict[str, Any], dict[str, str]]:
        from safetensors.torch import load as load_bytes

        tensors = load_bytes(data)
        length = int.from_bytes(data[:8], "little")
        return tensors, json.loads(data[8 : 8 + length]).get("__metadata__") or {}

    return _unpack(load, "the state", key)


def _read(path: str, label: str, key: str) -> tuple[dict[str, Any], Any, dict[str, str]]:
    def load() -> tuple[dict[str, Any], dict[str, str]]:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as opened:
            return {name: opened.get_tensor(name) for name in opened.keys()}, opened.metadata() or {}

    return _unpack(load, label, key)


def _unpack(load: Callable[[], tuple[dict[str, Any], dict[str, str]]], label: str,
            key: str) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """(tensors, meta, the header's other entries) from ``load``; any damage is one StateFileError."""
    from safetensors import SafetensorError

    try:
        tensors, metadata = load()
        header = dict(metadata)
        meta = json.loads(header.pop(key))
    except KeyError:
        raise StateFileError(f"{label} is unreadable (no {key!r} entry in its header)") from None
    except (OSError, SafetensorError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise StateFileError(f"{label} is unreadable ({type(exc).__name__}: {exc})") from None
    return tensors, meta, header
