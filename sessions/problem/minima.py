"""Minima files: finding them, checking them, loading them as flat parameter
vectors. Only weights are ever read: safetensors, or torch.load(weights_only=True).

A minimum is, in a minima folder, one of:
- a file: a safetensors state dict, or a ``.pt``/``.pth``/``.ckpt`` from torch.save
  holding a state dict, bare or nested under ``state_dict`` (Lightning's ``.ckpt``),
  ``model``, ``model_state_dict`` or ``ema`` (the first of these that holds one);
- a sub-folder in the Hugging Face layout (``save_pretrained``): ``model.safetensors``,
  or the shards named by ``model.safetensors.index.json``, whose ``weight_map``
  says which shard holds each tensor. Such a folder is one minimum, named after it.

Its tensors are matched to the model's parameters by name: as saved, or without the
prefixes DDP (``module.``), torch.compile (``_orig_mod.``) and Lightning (``model.``)
add, removed only where that makes every parameter of the model found with its shape.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, Iterable, Mapping

from sessions.errors import SessionError

SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
PARTIAL_SUFFIX = ".partial.safetensors"  # nebtui train's state of a minimum still in training
# The largest header a safetensors file may have (safetensors' own limit): a file claiming
# more is refused before any of it is read, whatever size it claims. A sharded model's
# index is held to the same limit.
MAX_HEADER_BYTES = 100_000_000
# A Hugging Face-style model folder: one file, or an index naming the shards
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
ACCEPTED = f"{', '.join(SUFFIXES)}, or sub-folders holding {WEIGHTS_FILE} or {INDEX_FILE}"
# Where a checkpoint nests its state dict, in the order they are looked in
WRAPPERS = ("state_dict", "model", "model_state_dict", "ema")
# What wrappers add to parameter names: DDP/DataParallel, torch.compile, a LightningModule's self.model
PREFIXES = ("module.", "_orig_mod.", "model.")
SAVE_WEIGHTS = "torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"


def find_minima(folder: str | Path) -> list[Path]:
    """The minima in ``folder``, sorted by name; at least two: weight files, and
    sub-folders holding a model in the Hugging Face layout (each one minimum)."""
    root = Path(folder)
    if not root.exists():
        raise SessionError(f"minima folder {root} does not exist: give the folder that holds your trained networks")
    if not root.is_dir():
        raise SessionError(f"{root} is not a folder: give the folder that holds the minima ({ACCEPTED})")
    found = sorted(p for p in root.iterdir()
                   if (p.is_file() and p.suffix in SUFFIXES and not is_partial(p)) or is_model_folder(p))
    partial = sorted(p.name for p in root.iterdir() if is_partial(p))
    if partial and len(found) < 2:
        raise SessionError(f"minima folder {root} holds unfinished training ({', '.join(partial)}): finish it with "
                           f"the nebtui train command that started it")
    if not found:
        raise SessionError(f"minima folder {root} holds no weight files ({ACCEPTED}): train some with nebtui train")
    if len(found) == 1:
        raise SessionError(f"minima folder {root} holds only one minimum ({found[0].name}): a path needs at least two")
    return found


def is_partial(path: Path) -> bool:
    """A minimum still in training (nebtui train's saved state), not a minimum."""
    return path.name.endswith(PARTIAL_SUFFIX)


def is_model_folder(path: Path) -> bool:
    """A folder holding one model in the Hugging Face layout (its files are checked when read)."""
    return path.is_dir() and any((path / name).exists() or (path / name).is_symlink()
                                 for name in (WEIGHTS_FILE, INDEX_FILE))


def minimum_name(path: Path) -> str:
    """A minimum's name: its file's name without the suffix, or its folder's name."""
    return path.name if path.is_dir() else path.stem


def sha256(path: Path) -> str:
    """A minimum's digest, which the manifest records and a resumed session checks.
    A file: the sha256 of its bytes. A model folder: the sha256 of the text made of
    one line ``<sha256 of the file>  <file name>\\n`` per weight file (the index and
    every shard it names, or model.safetensors), sorted by name; for plain names that
    is what ``sha256sum FILES | LC_ALL=C sort -k2 | sha256sum`` prints in the folder.
    A changed, added or lost shard changes it; the folder's other files do not."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path)
    files, _ = _model_folder(path)
    lines = "".join(f"{_file_sha256(file)}  {file.name}\n" for file in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def minimum_files(path: Path) -> list[Path]:
    """The files a minimum is read from: the file itself, or a model folder's weight
    files (the index and its shards, or model.safetensors), what ``sha256`` covers."""
    path = Path(path)
    return _model_folder(path)[0] if path.is_dir() else [path]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_entry(path: Path, parameters: int | None = None) -> dict[str, Any]:
    """The manifest's record of a minimum: absolute path, sha256 (see ``sha256``),
    parameter count (counted from its tensors when not given: safetensors files and
    model folders from their headers, without torch; a PyTorch file through torch's
    safe loader)."""
    path = Path(path)
    if parameters is None:
        if path.is_dir():
            parameters = sum(_folder_sizes(path).values())
        elif path.suffix == ".safetensors":
            parameters = sum(header_sizes(path).values())
        else:
            parameters = sum(t.numel() for t in read_weights(path).values())
    return {"path": str(path.absolute()), "sha256": sha256(path), "parameters": int(parameters)}


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


# ---- a model folder in the Hugging Face layout


def _model_folder(folder: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The weight files of a model folder and, for a sharded one, its weight map
    (tensor name -> shard file); model.safetensors wins over an index, as in
    transformers. The index is data: a shard is a file name in the folder, never a
    path, and no file is read through a link that leads out of the folder."""
    single = _own_file(folder, WEIGHTS_FILE)
    if single.exists():
        return [single], None
    index = _own_file(folder, INDEX_FILE)
    if not index.exists():
        raise SessionError(f"{folder} holds neither {WEIGHTS_FILE} nor {INDEX_FILE}: save the model there with "
                           "save_pretrained")
    weight_map = _weight_map(index)
    shards = []
    for name in sorted(set(weight_map.values())):
        if not _plain_name(name):
            raise SessionError(f"{index} names the shard {name!r}, which is not a file name in its folder: nebtui "
                               f"reads no file outside {folder}")
        shard = _own_file(folder, name)
        if not shard.is_file():
            raise SessionError(f"{index} names the shard {name}, which is not in {folder}: copy or download the "
                               "missing shards")
        shards.append(shard)
    return [index, *shards], weight_map


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def _own_file(folder: Path, name: str) -> Path:
    """``folder / name``, refused if it is a link that leads out of ``folder``."""
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a loop of links
        inside = False
    if not inside:
        raise SessionError(f"{path} is a link out of its model folder, and nebtui reads only the folder's own files: "
                           "copy the file itself in (cp -L)")
    return path


def _weight_map(index: Path) -> dict[str, str]:
    import json

    try:
        with open(index, "rb") as stream:
            text = stream.read(MAX_HEADER_BYTES + 1)
    except OSError as error:
        raise SessionError(f"{index} cannot be read ({error.strerror or error}): make it readable") from None
    if len(text) > MAX_HEADER_BYTES:
        raise SessionError(f"{index} is larger than {MAX_HEADER_BYTES} bytes, too large for an index: save the model "
                           "again with save_pretrained")
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise SessionError(f"{index} is not JSON ({error}): save the model again with save_pretrained") from None
    weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
    if not (isinstance(weight_map, dict) and weight_map
            and all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items())):
        raise SessionError(f"{index} has no weight_map from tensor names to shard files: save the model again with "
                           "save_pretrained")
    return weight_map


def _by_index(folder: Path, weight_map: dict[str, str], shards: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each tensor of the weight map, taken from the shard the map names (``shards``: file name -> its tensors)."""
    found = {}
    for name, shard in weight_map.items():
        if name not in shards[shard]:
            raise SessionError(f"{folder / INDEX_FILE} puts the tensor {name!r} in {shard}, which does not hold it: "
                               "copy or download the model again")
        found[name] = shards[shard][name]
    return found


def _folder_sizes(folder: Path) -> dict[str, int]:
    """The element count of every tensor of a model folder, from the safetensors headers alone."""
    files, weight_map = _model_folder(folder)
    if weight_map is None:
        return header_sizes(files[0])
    return _by_index(folder, weight_map, {shard.name: header_sizes(shard) for shard in files[1:]})


# ---- reading the weights


def read_weights(path: Path) -> dict[str, Any]:
    """The tensors of a minimum, by name as saved (wrappers unwrapped, prefixes kept)."""
    path = Path(path)
    if path.is_dir():
        files, weight_map = _model_folder(path)
        if weight_map is None:
            return _read_safetensors(files[0])
        return _by_index(path, weight_map, {shard.name: _read_safetensors(shard) for shard in files[1:]})
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    loaded = _read_pickle(path)
    state = _state_dict_in(loaded)
    if state is None:
        held = f" (it holds {_some([repr(k) for k in loaded])})" if isinstance(loaded, dict) and loaded else ""
        raise SessionError(f"{path} holds no state dict, a dict of tensors by name, bare or under "
                           f"{', '.join(repr(w) for w in WRAPPERS)}{held}: save the weights with {SAVE_WEIGHTS}")
    return state


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header_sizes(path)  # a damaged or oversized header is refused here, in one line naming the file
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SessionError(f"{path} is not a readable safetensors file ({error}): export the weights again") from None


def _read_pickle(path: Path) -> Any:
    """What torch.save wrote in ``path``, through torch's safe loader (weights_only)."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes about pickle protocols are not the user's business
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any refusal of the safe unpickler is one message
        raise _refusal(path, error) from None


def _refusal(path: Path, error: Exception) -> SessionError:
    """Why torch's safe loader refused ``path``, in one line: the class it would need, else torch's reason."""
    import re

    text = str(error)
    named = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    needed = named.group(1) if named else _first_foreign_global(path)
    if needed:
        return SessionError(f"{path} holds Python objects, not only weights (it needs the class {needed}), and "
                            f"nebtui never unpickles those: save the weights alone, with {SAVE_WEIGHTS}")
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    why = detail.group(1).strip() if detail else (lines[0] if lines else type(error).__name__)
    return SessionError(f"{path} is not a readable PyTorch weights file ({why}): save the weights with {SAVE_WEIGHTS}")


def _first_foreign_global(path: Path) -> str | None:
    """The first class or function outside torch that a plain pickle (pickle.dump, which
    torch's safe loader cannot parse) refers to: its opcodes are only decoded, nothing is
    built. None for a torch.save archive, or a file that is no pickle."""
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as stream:
            if stream.read(2) == b"PK":  # torch.save's zip archive: torch's own message names what it needs
                return None
            stream.seek(0)
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST"):
                    module, _, name = str(argument).partition(" ")
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    module, name = strings[-2], strings[-1]
                else:
                    if isinstance(argument, str):
                        strings.append(argument)
                    continue
                if module != "torch" and not module.startswith("torch.") and module != "collections":
                    return f"{module}.{name}"
    except Exception:  # noqa: BLE001 - not a pickle after all: torch's reason is the message
        return None
    return None


def _state_dict_in(loaded: Any, depth: int = 0) -> dict[str, Any] | None:
    """The state dict in what torch.load gave: itself, or nested under one of WRAPPERS."""
    import torch

    if (isinstance(loaded, dict) and loaded and all(isinstance(k, str) for k in loaded)
            and all(isinstance(v, torch.Tensor) for v in loaded.values())):
        return loaded
    if isinstance(loaded, dict) and depth < 3:
        for key in WRAPPERS:
            found = _state_dict_in(loaded.get(key), depth + 1)
            if found is not None:
                return found
    return None


# ---- matching the weights to the model


def flat_minimum(path: Path, layout: Any, buffers: Iterable[str] = ()) -> Any:
    """The minimum in ``path`` as a flat vector (D,) in the order of ``layout``
    (an engine ParameterLayout); refuses missing or misshapen parameters and NaN.
    ``buffers``: the model's buffer names, which a checkpoint may hold beside its
    parameters (they are not unexpected, and not read)."""
    return flat_weights(read_weights(path), layout, buffers, str(path))


def flat_weights(state: Mapping[str, Any], layout: Any, buffers: Iterable[str] = (), source: str = "the minimum") -> Any:
    """A state dict (name -> tensor) as a flat vector (D,) in the order of ``layout``,
    refused as ``flat_minimum`` refuses a file; ``source`` names it in the one line."""
    import torch

    weights = _matched(dict(state), layout, set(buffers), source)  # type: ignore[arg-type]
    flat = torch.cat([weights[name].detach().to(torch.float32).reshape(-1) for name in layout.names])  # (D,)
    if not bool(torch.isfinite(flat).all()):
        raise SessionError(f"{source} holds NaN or infinite weights: that network diverged, leave it out")
    return flat


def _matched(state: dict[str, Any], layout: Any, buffers: set[str], path: Path | str) -> dict[str, Any]:
    """``state`` renamed to the model's parameter names: as saved, else without the
    first of the wrappers' prefixes (up to three, shortest first) under which every
    parameter is found with its shape. Tensors of other names are left out."""
    best: tuple[int, str, list[str], list[str]] | None = None
    for prefix in ("".join(p) for n in range(4) for p in itertools.product(PREFIXES, repeat=n)):
        renamed = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if prefix and not renamed:
            continue
        missing = [name for name in layout.names if name not in renamed]
        misshapen = [name for name, shape in zip(layout.names, layout.shapes)
                     if name in renamed and tuple(renamed[name].shape) != tuple(shape)]
        if not missing and not misshapen:
            return renamed
        fitting = len(layout.names) - len(missing) - len(misshapen)
        if best is None or fitting > best[0]:
            best = (fitting, prefix, missing, misshapen)
    assert best is not None
    _, prefix, missing, misshapen = best
    known = set(layout.names) | buffers
    unexpected = [k for k in state if (k[len(prefix):] if k.startswith(prefix) else k) not in known]
    shapes = dict(zip(layout.names, layout.shapes))
    parts = [f"missing {_some([repr(n) for n in missing])}"] if missing else []
    parts += [f"unexpected {_some([repr(k) for k in unexpected])}"] if unexpected else []
    parts += [f"{name!r} has shape {tuple(state[prefix + name].shape)}, the model expects {tuple(shapes[name])}"
              for name in misshapen[:3]]
    parts += [f"{len(misshapen) - 3} more shapes differ"] if len(misshapen) > 3 else []
    raise SessionError(f"{path} does not fit the model ({'; '.join(parts)}): all minima must come from the same "
                       "architecture as --model")


def _some(items: list[str], shown: int = 3) -> str:
    """The first few of ``items``, and how many more."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
