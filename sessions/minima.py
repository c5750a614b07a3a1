"""Minima files: finding them, checking them, loading them as flat parameter
vectors. Only weights are ever read: safetensors, or torch.load(weights_only=True)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sessions.errors import SessionError

SUFFIXES = (".safetensors", ".pt", ".pth")
PARTIAL_SUFFIX = ".partial.safetensors"  # nebtui train's state of a minimum still in training
# The largest header a safetensors file may have (safetensors' own limit): a file claiming
# more is refused before any of it is read, whatever size it claims
MAX_HEADER_BYTES = 100_000_000


def find_minima(folder: str | Path) -> list[Path]:
    """The weight files in ``folder``, sorted by name; at least two."""
    root = Path(folder)
    if not root.exists():
        raise SessionError(f"minima folder {root} does not exist: give the folder that holds your trained networks")
    if not root.is_dir():
        raise SessionError(f"{root} is not a folder: give the folder that holds the minima files ({', '.join(SUFFIXES)})")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in SUFFIXES and not is_partial(p))
    partial = sorted(p.name for p in root.iterdir() if is_partial(p))
    if partial and len(files) < 2:
        raise SessionError(f"minima folder {root} holds unfinished training ({', '.join(partial)}): finish it with "
                           f"the nebtui train command that started it")
    if not files:
        raise SessionError(f"minima folder {root} holds no weight files ({', '.join(SUFFIXES)}): train some with nebtui train")
    if len(files) == 1:
        raise SessionError(f"minima folder {root} holds only one minimum ({files[0].name}): a path needs at least two")
    return files


def is_partial(path: Path) -> bool:
    """A minimum still in training (nebtui train's saved state), not a minimum."""
    return path.name.endswith(PARTIAL_SUFFIX)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_entry(path: Path, parameters: int | None = None) -> dict[str, Any]:
    """The manifest's record of a minimum: absolute path, sha256, parameter count
    (counted from the file's tensors when not given: a safetensors file from its
    header, without torch; a PyTorch file through torch's safe loader)."""
    if parameters is None:
        if Path(path).suffix == ".safetensors":
            parameters = sum(numel for numel in header_sizes(Path(path)).values())
        else:
            parameters = sum(t.numel() for t in read_weights(path).values())
    return {"path": str(Path(path).absolute()), "sha256": sha256(path), "parameters": int(parameters)}


def header_sizes(path: Path) -> dict[str, int]:
    """The element count of every tensor in a safetensors file, read from its JSON
    header alone (no torch, no tensor data); refuses a file whose header does not read."""
    import json
    import math

    def unreadable(why: str) -> SessionError:
        return SessionError(f"{path} is not a readable safetensors file ({why}): export the weights again")

    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            if len(head) < 8:
                raise unreadable("too short for a header")
            length = int.from_bytes(head, "little")
            size = path.stat().st_size
            if length > MAX_HEADER_BYTES:
                raise unreadable(f"its header claims {length} bytes, more than the {MAX_HEADER_BYTES} safetensors "
                                 "allows")
            if length > size - 8:
                raise unreadable("its header runs past the end of the file")
            header = json.loads(stream.read(length))
    except OSError as error:
        raise unreadable(error.strerror or str(error)) from None
    except ValueError as error:
        raise unreadable(f"header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise unreadable("header is not a table of tensors")
    sizes = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise unreadable(f"tensor {name!r} has no shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= size - 8 - length):
            raise unreadable(f"tensor {name!r} lies outside the file")
        sizes[name] = math.prod(shape)
    return sizes


def read_weights(path: Path) -> dict[str, Any]:
    """The tensors of a weights file, by name (common wrappers unwrapped)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        header_sizes(path)  # a damaged header is refused here, in one line naming the file
        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise SessionError(f"{path} is not a readable safetensors file ({error}): export the weights again") from None
    else:
        import warnings

        try:
            with warnings.catch_warnings():  # torch's notes about pickle protocols are not the user's business
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any refusal of the safe unpickler is one message
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if "weights_only" in str(error) or "Unsupported global" in str(error):
                raise SessionError(
                    f"{path} holds Python objects, not only weights, and nebtui never unpickles those: "
                    "save model.state_dict() (or use safetensors)"
                ) from None
            raise SessionError(f"{path} is not a readable PyTorch weights file ({first})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SessionError(f"{path} does not hold a dict of tensors (a state_dict): save model.state_dict()")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def flat_minimum(path: Path, layout: Any) -> Any:
    """The minimum in ``path`` as a flat vector (D,) in the order of ``layout``
    (an engine ParameterLayout); refuses missing or misshapen parameters and NaN."""
    import torch

    state = read_weights(path)
    parts = []
    for name, shape in zip(layout.names, layout.shapes):
        if name not in state:
            raise SessionError(f"{path} has no parameter {name!r}: it was not saved from this model (--model)")
        tensor = state[name]
        if tuple(tensor.shape) != tuple(shape):
            raise SessionError(
                f"{path}: parameter {name!r} has shape {tuple(tensor.shape)}, the model expects {tuple(shape)}: "
                "all minima must come from the same architecture as --model"
            )
        parts.append(tensor.detach().to(torch.float32).reshape(-1))
    flat = torch.cat(parts)
    if not bool(torch.isfinite(flat).all()):
        raise SessionError(f"{path} holds NaN or infinite weights: that network diverged, leave it out")
    return flat
