"""A connection's state ({"tensors": {name: Tensor}, "meta": JSON-able}) in the
state-file format (sessions.disk.statefile, meta under the key ``meta``): how states
travel between the runner and its workers, and how finished paths rest in
results/paths/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessions.disk import statefile

META_KEY = "meta"


def pack_state(state: dict[str, Any]) -> bytes:
    """The state as safetensors bytes."""
    return statefile.to_bytes(state["tensors"], state["meta"], key=META_KEY)


def unpack_state(data: bytes) -> dict[str, Any]:
    """The inverse of ``pack_state``; a damaged state is a StateFileError."""
    tensors, meta, _ = statefile.from_bytes(data, key=META_KEY)
    return {"tensors": tensors, "meta": meta}


def read_state(path: Path) -> dict[str, Any]:
    """A state saved as a file (results/paths/A-B.safetensors)."""
    tensors, meta, _ = statefile.read(path, key=META_KEY)
    return {"tensors": tensors, "meta": meta}
