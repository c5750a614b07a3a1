"""States (tensors + JSON meta) as bytes or files in safetensors form: how
connection states travel from workers to the runner and rest in results/."""

from __future__ import annotations

import json
from typing import Any


def pack_state(state: dict[str, Any]) -> bytes:
    """{"tensors": {name: Tensor}, "meta": JSON-able} -> safetensors bytes."""
    from safetensors.torch import save

    tensors = {name: t.detach().contiguous().clone() for name, t in state["tensors"].items()}
    return save(tensors, metadata={"meta": json.dumps(state["meta"])})


def unpack_state(data: bytes) -> dict[str, Any]:
    """The inverse of ``pack_state``; never unpickles."""
    from safetensors.torch import load

    tensors = load(data)
    meta = _metadata(data)
    return {"tensors": tensors, "meta": json.loads(meta["meta"])}


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's __metadata__ (the header is 8 bytes of length + JSON)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    return header.get("__metadata__", {})
