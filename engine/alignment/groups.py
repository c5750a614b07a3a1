"""Which hidden units of a network permute together: its permutation groups.

Permuting the output units of a layer (rows of its weight and bias, and of the
BatchNorm that follows it) and, the same way, the input units of every layer
that reads them, leaves the network's function unchanged. A *group* is a set of
channel axes that must share one permutation: a layer's output and its readers
in a plain network; every layer that adds into one residual stream in a ResNet.

The groups are found by tracing the module with ``torch.fx`` and following the
channel axis (dim 1, the features of a Linear) through the graph:

- Linear / Conv1d/2d/3d make a new group for their output channels; their
  weight is permuted on dim 0 by it and on dim 1 by the channels they read.
- BatchNorm, activations, pooling, dropout, spatial slicing and means over
  spatial dims keep the channels (and their groups) as they are.
- ``a + b`` (and other elementwise ops of two tensors) tie the channels of a
  and b: they get one permutation (the residual stream).
- ``torch.cat`` on dim 1 concatenates channels; ``F.pad`` of the channel dim
  appends (or prepends) channels of their own, so a zero-padded shortcut
  (ResNet option A) ties the stream's first channels to the narrower stream
  it comes from, and its padded channels to their own group. A group tied to
  a part of another is split where the parts meet.
- flatten(1) after a convolution: the next Linear reads each channel as a
  block of consecutive features (channel-major), permuted as one.
- The inputs and the outputs of the network are never permuted; nor is
  anything tied to them.

Anything else (a layer with parameters of another kind, an operation that
mixes or reshapes channels, a parameter used directly in ``forward``) is
refused with a ValueError that names it: no guess is made about a network the
analysis does not understand.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _Channels:
    """A run of channels that are permuted as one block: a leaf of the channel
    structure, or (once split) a sequence of smaller runs in ``parts``.

    Leaves that must share one permutation form a class (union-find; the root
    keeps the class's members and whether it is fixed, i.e. never permuted).
    """

    def __init__(self, size: int | None, origin: str, fixed: bool = False, order: int = 0):
        self.size = size  # None: the network's inputs, whose count is not known (always fixed)
        self.origin = origin  # the layer or operation that made these channels
        self.order = order  # when in the trace they were made: a group is named by its first layer
        self.parts: list[_Channels] | None = None
        self.parent: _Channels = self
        self.members: list[_Channels] = [self]
        self.fixed = fixed or size is None

    def root(self) -> "_Channels":
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node

    def leaves(self) -> list["_Channels"]:
        if self.parts is None:
            return [self]
        return [leaf for part in self.parts for leaf in part.leaves()]


def _union(a: _Channels, b: _Channels) -> None:
    ra, rb = a.root(), b.root()
    if ra is rb:
        return
    if len(ra.members) < len(rb.members):
        ra, rb = rb, ra
    rb.parent = ra
    ra.members.extend(rb.members)
    ra.fixed = ra.fixed or rb.fixed
    rb.members = []


def _split(leaf: _Channels, first: int) -> None:
    """Split the class of ``leaf`` after ``first`` channels: every member becomes
    two parts, the first parts form one class and the second parts another."""
    root = leaf.root()
    heads: list[_Channels] = []
    tails: list[_Channels] = []
    for member in list(root.members):
        assert member.size is not None and member.parts is None
        head = _Channels(first, member.origin, root.fixed, member.order)
        tail = _Channels(member.size - first, member.origin, root.fixed, member.order)
        member.parts = [head, tail]
        heads.append(head)
        tails.append(tail)
    for run in (heads, tails):
        for other in run[1:]:
            _union(run[0], other)


@dataclass
class _Space:
    """The channel axis of a tensor in the traced graph: runs of channels in
    order; ``flat`` once flatten(1) has folded the positions into the features."""

    runs: list[_Channels]
    rank: int | None  # the tensor's number of dims, None when unknown
    flat: bool = False

    def leaves(self) -> list[_Channels]:
        return [leaf for run in self.runs for leaf in run.leaves()]

    def size(self) -> int | None:
        sizes = [leaf.size for leaf in self.leaves()]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]

    def all_fixed(self) -> bool:
        return all(leaf.root().fixed for leaf in self.leaves())


def _tie(a: _Space, b: _Space, where: str) -> None:
    """Give the channels of ``a`` and ``b`` (an elementwise op between them) one permutation."""
    left, right = a.leaves(), b.leaves()
    if any(leaf.size is None for leaf in left + right) or a.flat != b.flat:
        for leaf in left + right:  # tied to the inputs, or not alignable: never permuted
            leaf.root().fixed = True
        return
    if sum(leaf.size for leaf in left) != sum(leaf.size for leaf in right):  # type: ignore[misc]
        raise ValueError(f"cannot analyse {where}: it combines tensors with different channel counts")
    i = j = 0
    while i < len(left):
        x, y = left[i], right[j]
        if x.parts is not None or y.parts is not None:  # split meanwhile (a class shared by both sides)
            left[i : i + 1], right[j : j + 1] = x.leaves(), y.leaves()
            continue
        if x.size == y.size:
            _union(x, y)
            i += 1
            j += 1
        elif x.size < y.size:  # type: ignore[operator]
            _split(y, x.size)  # type: ignore[arg-type]
            right[j : j + 1] = y.parts  # type: ignore[assignment]
        else:
            _split(x, y.size)  # type: ignore[arg-type]
            left[i : i + 1] = x.parts  # type: ignore[assignment]


@dataclass(frozen=True)
class Axis:
    """One axis of a parameter or buffer: the groups its entries belong to, in
    order, each run ``(group index or None for fixed, channels)``; each channel
    spans ``block`` consecutive entries (a Linear after flatten(1))."""

    runs: tuple[tuple[int | None, int], ...]
    block: int = 1


@dataclass(frozen=True)
class Group:
    """Channels sharing one permutation: ``size`` of them, named by ``origin``
    (the layer that makes them; a residual stream by its first layer)."""

    size: int
    origin: str


@dataclass
class PermutationSpec:
    """The permutation groups of a network and where each tensor is permuted.

    ``axes[name][dim]``: how the state-dict entry ``name`` is permuted on ``dim``
    (parameters and BatchNorm running statistics; entries not listed are never
    permuted).
    """

    groups: list[Group]
    axes: dict[str, dict[int, Axis]] = field(default_factory=dict)

    def tensors_of(self, group: int) -> list[tuple[str, int, int, int]]:
        """Where ``group`` appears: (tensor name, dim, first channel, block) per run."""
        found = []
        for name, dims in self.axes.items():
            for dim, axis in dims.items():
                offset = 0
                for index, count in axis.runs:
                    if index == group:
                        found.append((name, dim, offset, axis.block))
                    offset += count
        return found


# --- what each kind of node does to the channel axis --------------------------------

_KEEP_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Mish,
    nn.Hardtanh, nn.Hardswish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
_KEEP_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.softplus, F.mish, F.hardtanh, F.hardswish,
    torch.relu, torch.tanh, torch.sigmoid, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, torch.abs, operator.neg,
}
_KEEP_METHODS = {"relu", "tanh", "sigmoid", "abs", "neg", "contiguous", "clone", "detach", "float", "to"}
_ELEMENTWISE = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
                operator.truediv, torch.add, torch.sub, torch.mul}
_ELEMENTWISE_METHODS = {"add", "add_", "sub", "mul", "div"}
_REDUCTIONS = {"mean", "sum", "amax"}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The permutation groups of ``model``, found by tracing it (see the module's
    docstring); a ValueError naming the layer or operation it cannot analyse."""
    try:
        graph = fx.Tracer().trace(model)  # torch.nn's own layers are leaves, the rest is traced through
    except Exception as error:  # noqa: BLE001 - fx raises many kinds on untraceable code
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(error).__name__}: {error}): "
            "weight matching needs a forward without data-dependent control flow"
        ) from None
    return _Analysis(model).run(graph)


class _Analysis:
    def __init__(self, model: nn.Module):
        self.model = model
        self.modules = dict(model.named_modules())
        self.spaces: dict[fx.Node, Any] = {}  # node -> _Space (tensors) or a plain value
        self.layers: dict[str, tuple[_Space, _Space]] = {}  # module name -> (reads, makes)
        self.tensors: dict[str, dict[int, _Space]] = {}  # state-dict name -> dim -> channels
        self.block: dict[tuple[str, int], str] = {}  # (tensor, dim) -> the layer, for block sizes

    def run(self, graph: fx.Graph) -> PermutationSpec:
        for node in graph.nodes:
            self.spaces[node] = self._visit(node)
        return self._spec()

    # -- nodes --------------------------------------------------------------------

    def _arg(self, value: Any) -> Any:
        if isinstance(value, fx.Node):
            return self.spaces[value]
        if isinstance(value, (list, tuple)):
            return type(value)(self._arg(v) for v in value)
        return value

    def _visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return _Space([_Channels(None, f"input {node.name}")], rank=None)
        if node.op == "output":
            for space in _spaces_in(self._arg(node.args)):
                for leaf in space.leaves():
                    leaf.root().fixed = True
            return None
        if node.op == "get_attr":
            raise ValueError(
                f"cannot analyse {node.target!r}: forward uses a parameter or buffer directly, "
                "outside a Linear, Conv or BatchNorm layer"
            )
        if node.op == "call_module":
            return self._module(node, self.modules[str(node.target)])
        if node.op == "call_function":
            return self._function(node, node.target, self._arg(node.args), self._arg(node.kwargs))
        if node.op == "call_method":
            args = self._arg(node.args)
            return self._method(node, str(node.target), args[0], args[1:], self._arg(node.kwargs))
        raise ValueError(f"cannot analyse node {node.name} ({node.op})")

    def _module(self, node: fx.Node, module: nn.Module) -> Any:
        name = str(node.target)
        (x,) = self._arg(node.args) or (None,)
        if not isinstance(x, _Space):
            raise ValueError(f"cannot analyse layer {name!r}: it is not called on one tensor")
        if isinstance(module, nn.Linear):
            if x.rank is not None and x.rank != 2:
                raise ValueError(f"cannot analyse layer {name!r}: a Linear on a tensor of rank {x.rank} "
                                 "mixes the positions of dims other than the features")
            return self._layer(name, module, x, module.in_features, module.out_features, rank=2)
        if isinstance(module, _CONVS):
            if module.groups != 1:
                raise ValueError(f"cannot analyse layer {name!r}: grouped convolutions (groups={module.groups}) "
                                 "are not supported")
            if x.flat:
                raise ValueError(f"cannot analyse layer {name!r}: a convolution after flatten")
            rank = module.weight.dim()
            return self._layer(name, module, x, module.in_channels, module.out_channels, rank=rank)
        if isinstance(module, _BatchNorm):
            self._check_size(name, x, module.num_features, flat_ok=True)
            for entry in ("weight", "bias", "running_mean", "running_var"):
                if getattr(module, entry, None) is not None:
                    self._attach(f"{name}.{entry}", 0, x)
            return x
        if isinstance(module, nn.Flatten):
            return self._flatten(name, x, module.start_dim, module.end_dim)
        if isinstance(module, _KEEP_MODULES):
            return x
        if any(True for _ in module.parameters(recurse=False)):
            raise ValueError(
                f"cannot analyse layer {name!r} ({type(module).__name__}): weight matching knows Linear, "
                "Conv1d/2d/3d and BatchNorm layers only"
            )
        raise ValueError(f"cannot analyse layer {name!r} ({type(module).__name__}): "
                         "its effect on the channels is unknown")

    def _layer(self, name: str, module: nn.Module, x: _Space, reads: int, makes: int, rank: int) -> _Space:
        self._check_size(name, x, reads, flat_ok=isinstance(module, nn.Linear))
        if name in self.layers:  # a layer called again: the same channels in and out
            first_in, first_out = self.layers[name]
            _tie(first_in, x, f"layer {name!r} (called twice)")
            return _Space(first_out.runs, rank=rank)
        out = _Space([_Channels(makes, name, order=len(self.spaces))], rank=rank)
        self.layers[name] = (x, out)
        self._attach(f"{name}.weight", 0, out)
        self._attach(f"{name}.weight", 1, x)
        if getattr(module, "bias", None) is not None:
            self._attach(f"{name}.bias", 0, out)
        return out

    def _check_size(self, name: str, x: _Space, expected: int, flat_ok: bool = False) -> None:
        size = x.size()
        if size is None or x.all_fixed() and x.flat:
            return
        fits = size == expected or (flat_ok and x.flat and expected % size == 0)
        if not fits:
            raise ValueError(f"cannot analyse layer {name!r}: it takes {expected} channels where the analysis "
                             f"counts {size}; an operation before it changes the channels in a way not followed")

    def _attach(self, tensor: str, dim: int, space: _Space) -> None:
        self.tensors.setdefault(tensor, {})[dim] = space

    def _flatten(self, where: str, x: _Space, start: int, end: int) -> _Space:
        if start != 1 or end != -1:
            raise ValueError(f"cannot analyse {where}: flatten({start}, {end}) moves the channel dim; "
                             "only flatten from dim 1 to the end is followed")
        if x.rank == 2:
            return x
        return _Space(x.runs, rank=2, flat=True)

    def _function(self, node: fx.Node, target: Any, args: tuple, kwargs: dict) -> Any:
        where = f"operation {node.name} ({getattr(target, '__name__', target)})"
        if target in _KEEP_FUNCTIONS:
            return args[0]
        if target in _ELEMENTWISE:
            return self._elementwise(where, list(args[:2]))
        if target is torch.flatten:
            return self._flatten(where, args[0], *_flatten_dims(args[1:], kwargs))
        if target is torch.cat:
            return self._cat(where, args[0], args[1] if len(args) > 1 else kwargs.get("dim", 0))
        if target is F.pad:
            if kwargs.get("mode", "constant") != "constant" or (len(args) > 2 and args[2] != "constant"):
                raise ValueError(f"cannot analyse {where}: only constant padding is followed")
            return self._pad(node, where, args[0], args[1] if len(args) > 1 else kwargs["pad"])
        if target is operator.getitem:
            return self._getitem(where, args[0], args[1])
        if target is getattr:
            return None
        raise ValueError(f"cannot analyse {where}: its effect on the channels is unknown")

    def _method(self, node: fx.Node, method: str, x: Any, args: tuple, kwargs: dict) -> Any:
        where = f"operation {node.name} (.{method})"
        if not isinstance(x, _Space):
            raise ValueError(f"cannot analyse {where}: it is not called on a tensor")
        if method in _KEEP_METHODS:
            return x
        if method in _ELEMENTWISE_METHODS:
            return self._elementwise(where, [x, args[0] if args else kwargs.get("other")])
        if method == "size":
            return None
        if method == "flatten":
            return self._flatten(where, x, *_flatten_dims(args, kwargs))
        if method in ("view", "reshape"):
            shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            if len(shape) == 2 and shape[1] == -1:  # x.view(x.size(0), -1)
                return self._flatten(where, x, 1, -1)
            raise ValueError(f"cannot analyse {where}: only x.{method}(batch, -1) is followed")
        if method in _REDUCTIONS:
            dims = args[0] if args else kwargs.get("dim")
            keep = kwargs.get("keepdim", args[1] if len(args) > 1 else False)
            return self._reduce(where, x, dims, bool(keep))
        raise ValueError(f"cannot analyse {where}: its effect on the channels is unknown")

    # -- the operations that change the channel structure ---------------------------------

    def _elementwise(self, where: str, operands: list[Any]) -> Any:
        tensors = [a for a in operands if isinstance(a, _Space)]
        if not tensors:
            return None
        for other in tensors[1:]:
            _tie(tensors[0], other, where)
        ranks = [t.rank for t in tensors if t.rank is not None]
        return _Space(tensors[0].runs, rank=max(ranks) if ranks else None, flat=tensors[0].flat)

    def _cat(self, where: str, parts: Any, dim: int) -> _Space:
        parts = list(parts)
        if not all(isinstance(p, _Space) for p in parts):
            raise ValueError(f"cannot analyse {where}: concatenates something that is not a traced tensor")
        rank = next((p.rank for p in parts if p.rank is not None), None)
        if dim < 0:
            if rank is None:
                raise ValueError(f"cannot analyse {where}: cat along dim {dim} of a tensor of unknown rank")
            dim += rank
        if dim == 1:
            if any(p.flat for p in parts):
                raise ValueError(f"cannot analyse {where}: cat of flattened features")
            return _Space([run for p in parts for run in p.runs], rank=rank)
        for other in parts[1:]:
            _tie(parts[0], other, where)
        return parts[0]

    def _pad(self, node: fx.Node, where: str, x: _Space, pad: Any) -> _Space:
        if x.rank is None:
            raise ValueError(f"cannot analyse {where}: padding a tensor of unknown rank")
        pad = list(pad)
        pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]  # pairs[k] pads dim rank-1-k
        channel, batch = x.rank - 2, x.rank - 1
        if batch < len(pairs) and pairs[batch] != (0, 0):
            raise ValueError(f"cannot analyse {where}: it pads the batch dim")
        if channel >= len(pairs) or pairs[channel] == (0, 0):
            return x
        before, after = pairs[channel]
        if not all(isinstance(v, int) and v >= 0 for v in (before, after)) or x.flat:
            raise ValueError(f"cannot analyse {where}: only padding the channels with a fixed count is followed")
        runs = list(x.runs)
        if before:
            runs.insert(0, _Channels(before, f"padding of {node.name}", order=len(self.spaces)))
        if after:
            runs.append(_Channels(after, f"padding of {node.name}", order=len(self.spaces)))
        return _Space(runs, rank=x.rank)

    def _getitem(self, where: str, x: Any, index: Any) -> Any:
        if not isinstance(x, _Space):
            raise ValueError(f"cannot analyse {where}: indexing something other than a tensor")
        index = index if isinstance(index, tuple) else (index,)
        full = slice(None, None, None)
        if len(index) >= 2 and index[0] == full and index[1] == full and all(
            isinstance(i, slice) for i in index[2:]
        ):
            return x
        if len(index) == 1 and index[0] == full:
            return x
        raise ValueError(f"cannot analyse {where}: indexing other than spatial slicing [:, :, ...]")

    def _reduce(self, where: str, x: _Space, dims: Any, keep: bool) -> _Space:
        if dims is None:
            raise ValueError(f"cannot analyse {where}: a reduction over every dim")
        dims = [dims] if isinstance(dims, int) else list(dims)
        if any(d < 0 for d in dims):
            if x.rank is None:
                raise ValueError(f"cannot analyse {where}: a reduction over dim {dims} of unknown rank")
            dims = [d + x.rank if d < 0 else d for d in dims]
        if 0 in dims or 1 in dims or x.flat:
            raise ValueError(f"cannot analyse {where}: it reduces the batch or the channel dim")
        rank = None if x.rank is None else (x.rank if keep else x.rank - len(dims))
        return _Space(x.runs, rank=rank)

    # -- the result -----------------------------------------------------------------------

    def _spec(self) -> PermutationSpec:
        classes: dict[int, int] = {}  # id(root) -> group index
        groups: list[Group] = []
        axes: dict[str, dict[int, Axis]] = {}
        state = dict(self.model.state_dict(keep_vars=True))
        for tensor, dims in self.tensors.items():
            shape = state[tensor].shape
            for dim, space in dims.items():
                runs = []
                for leaf in space.leaves():
                    root = leaf.root()
                    if root.fixed:
                        runs.append((None, leaf.size))
                        continue
                    if id(root) not in classes:
                        classes[id(root)] = len(groups)
                        groups.append(Group(int(leaf.size), _origin(root)))  # type: ignore[arg-type]
                    runs.append((classes[id(root)], leaf.size))
                if all(index is None for index, _ in runs):
                    continue
                if any(count is None for _, count in runs):
                    raise ValueError(f"cannot analyse {tensor!r}: it reads the network's inputs together with "
                                     "hidden channels")
                channels = sum(count for _, count in runs)  # type: ignore[misc]
                if shape[dim] % channels:
                    raise ValueError(f"cannot analyse {tensor!r}: {shape[dim]} entries on dim {dim} "
                                     f"for {channels} channels")
                axes.setdefault(tensor, {})[dim] = Axis(tuple(runs), shape[dim] // channels)  # type: ignore[arg-type]
        return PermutationSpec(groups, axes)


def _origin(root: _Channels) -> str:
    first = min(root.members, key=lambda m: m.order).origin
    others = len({m.origin for m in root.members}) - 1
    return first if not others else f"{first} (+{others} tied)"


def _flatten_dims(args: tuple, kwargs: dict) -> tuple[int, int]:
    """(start_dim, end_dim) of a flatten call, given by position or by name."""
    start = args[0] if len(args) > 0 else kwargs.get("start_dim", 0)
    end = args[1] if len(args) > 1 else kwargs.get("end_dim", -1)
    return start, end


def _spaces_in(value: Any) -> list[_Space]:
    if isinstance(value, _Space):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _spaces_in(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _spaces_in(v)]
    return []
