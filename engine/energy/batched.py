"""N pivots' networks in one forward pass, written out by hand instead of vmap.

Where a layer has a direct batched form, the pivot axis goes into the tensors
the layer already knows how to batch, with no per-operation vmap dispatch:

- "rows" layout, for fully connected nets on flat inputs: activations
  (N, B, F); a Linear is one batched matmul (``baddbmm``) with each pivot's
  weight (N, in, out); BatchNorm1d normalises each pivot's rows by that
  pivot's own batch statistics (mean and biased variance over B).
- "channels" layout, for convolutional nets: the pivot axis folded into the
  channels, activations (B, N C, H, W) with pivot n's channels at
  [n C, (n + 1) C). A Conv2d is one grouped convolution (N groups, or N g for a
  convolution of g groups) with the pivots' kernels stacked; BatchNorm's
  per-channel batch statistics are then exactly per pivot and per channel;
  ReLU, pooling, global means and Flatten act within each pivot's channels
  as they are; a Linear transposes to (N, B, in) for one batched matmul.

Both compute what the loop computes for each pivot on its own minibatch
(BatchNorm on that minibatch's statistics, dropout off), in another order of
the same float32 sums.

For a chain of Linear layers and activations (ReLU, Tanh, Sigmoid) in the rows
layout under the cross-entropy loss, the backward pass is written out as well
(``cross_entropy_forward`` and ``cross_entropy_backward``): the operations
autograd would run, in its order and with its kernels, so the gradients are
bit for bit autograd's, without building and walking a graph (on the digits
MLP, N = 16, that graph cost about as much as its arithmetic). A module is supported only if every module in it is
of one of the exact types below (a subclass may change ``forward``); any other
model raises ``BatchedUnsupported`` and the energy falls back to vmap or the loop.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.networks import cifar_models

# Parameter-free modules that act on each element, or pass through: the same in both layouts.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
    nn.Softplus, nn.Identity, nn.Dropout,  # dropout is off during steps (eval mode)
)
# Parameter-free modules that act within each channel (or keep dim 0 and flatten the rest):
# right in the channels layout, where the pivot axis is folded into the channels.
_PER_CHANNEL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Containers whose own forward only calls their children, adds tensors of the same
# layout, applies ReLU or takes means over the spatial dims (read in their source).
_CONTAINERS = {
    "rows": (nn.Sequential,),
    "channels": (
        nn.Sequential,
        cifar_models.CifarResNet,
        cifar_models.ResidualBlock,
        cifar_models.CifarDenseNet,
        cifar_models.Transition,
    ),
}


class BatchedUnsupported(ValueError):
    """The model has a layer without a direct batched form here."""


class _Pivots:
    """This call's parameters of every pivot: name -> (N, *shape), shared by the layers."""

    def __init__(self) -> None:
        self.params: dict[str, Tensor] = {}
        self.n = 0


class _Linear(nn.Module):
    def __init__(self, pivots: _Pivots, prefix: str, bias: bool, layout: str):
        super().__init__()
        self.pivots, self.prefix, self.bias, self.layout = pivots, prefix, bias, layout

    def forward(self, x: Tensor) -> Tensor:
        n, params = self.pivots.n, self.pivots.params
        weight = params[self.prefix + "weight"].transpose(1, 2)  # (N, in, out)
        if self.layout == "channels":
            if x.dim() != 2:
                raise BatchedUnsupported(
                    f"a Linear layer ({self.prefix or 'the model'}) on a {x.dim()}-D input in a "
                    "convolutional net: no batched form here"
                )
            batch = x.shape[0]
            rows = x.view(batch, n, -1).transpose(0, 1)  # (N, B, in)
        else:
            rows = x  # (N, B, in)
        if self.bias:
            out = torch.baddbmm(params[self.prefix + "bias"].unsqueeze(1), rows, weight)  # (N, B, out)
        else:
            out = torch.bmm(rows, weight)
        if self.layout == "channels":
            return out.transpose(0, 1).reshape(out.shape[1], -1)  # (B, N out)
        return out


class _Conv2d(nn.Module):
    def __init__(self, pivots: _Pivots, prefix: str, conv: nn.Conv2d):
        super().__init__()
        self.pivots, self.prefix = pivots, prefix
        self.bias = conv.bias is not None
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: Tensor) -> Tensor:  # (B, N C_in, H, W) -> (B, N C_out, H', W')
        n, params = self.pivots.n, self.pivots.params
        weight = params[self.prefix + "weight"].flatten(0, 1)  # (N C_out, C_in / g, k, k)
        bias = params[self.prefix + "bias"].flatten() if self.bias else None
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, n * self.groups)


class _BatchNormLayer(nn.Module):
    def __init__(self, pivots: _Pivots, prefix: str, norm: nn.Module, layout: str):
        super().__init__()
        self.pivots, self.prefix, self.layout = pivots, prefix, layout
        self.affine, self.eps = norm.affine, norm.eps

    def forward(self, x: Tensor) -> Tensor:
        params = self.pivots.params
        weight = params[self.prefix + "weight"] if self.affine else None  # (N, C)
        bias = params[self.prefix + "bias"] if self.affine else None
        if self.layout == "channels":
            # (B, N C, ...): each folded channel's statistics are one pivot's, one channel's.
            return F.batch_norm(
                x, None, None,
                None if weight is None else weight.flatten(),
                None if bias is None else bias.flatten(),
                True, 0.0, self.eps,
            )
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)  # (N, 1, F)
        out = (x - mean) * torch.rsqrt(var + self.eps)  # (N, B, F)
        if weight is not None:
            out = torch.addcmul(bias.unsqueeze(1), out, weight.unsqueeze(1))
        return out


class _ZeroPadShortcut(nn.Module):
    """ResNet shortcut option A per pivot: the zero channels pad each pivot's own block."""

    def __init__(self, pivots: _Pivots, shortcut: cifar_models.ZeroPadShortcut):
        super().__init__()
        self.pivots, self.extra, self.stride = pivots, shortcut.extra, shortcut.stride

    def forward(self, x: Tensor) -> Tensor:  # (B, N C, H, W) -> (B, N (C + extra), H/s, W/s)
        x = x[:, :, :: self.stride, :: self.stride]
        if not self.extra:
            return x
        b, nc, h, w = x.shape
        n = self.pivots.n
        padded = F.pad(x.view(b, n, nc // n, h, w), (0, 0, 0, 0, 0, self.extra))
        return padded.view(b, -1, h, w)


class _DenseLayer(nn.Module):
    """DenseNet layer per pivot: each pivot's new maps follow its own input maps."""

    def __init__(self, pivots: _Pivots, new: nn.Module):
        super().__init__()
        self.pivots, self.new = pivots, new

    def forward(self, x: Tensor) -> Tensor:  # (B, N C, H, W) -> (B, N (C + growth), H, W)
        n = self.pivots.n
        new = self.new(x)
        b, _, h, w = x.shape
        both = torch.cat([x.view(b, n, -1, h, w), new.view(b, n, -1, h, w)], dim=2)
        return both.view(b, -1, h, w)


def _layout_for(model: nn.Module, flat_inputs: bool) -> str:
    """"rows" for a fully connected net on flat inputs, else "channels"; raises
    BatchedUnsupported naming the first module that neither layout handles."""
    layouts = ["rows", "channels"] if flat_inputs else ["channels"]
    for name, module in model.named_modules():
        kind = type(module)
        if kind in _ELEMENTWISE:
            continue
        if kind in (nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d):
            if kind is nn.BatchNorm2d and "rows" in layouts:
                layouts.remove("rows")
            continue
        if kind is nn.Conv2d:
            if module.padding_mode != "zeros":
                raise BatchedUnsupported(f"{name}: Conv2d with padding_mode={module.padding_mode!r}")
            layouts = [k for k in layouts if k == "channels"]
            continue
        if kind in (cifar_models.ZeroPadShortcut, cifar_models.DenseLayer) or kind in _PER_CHANNEL:
            layouts = [k for k in layouts if k == "channels"]
            continue
        if kind is nn.Flatten:
            if (module.start_dim, module.end_dim) != (1, -1):
                raise BatchedUnsupported(f"{name}: Flatten other than from dim 1 to the end")
            layouts = [k for k in layouts if k == "channels"]
            continue
        if any(kind in _CONTAINERS[k] for k in layouts):
            layouts = [k for k in layouts if kind in _CONTAINERS[k]]
            continue
        raise BatchedUnsupported(f"{name or 'the model'}: {kind.__name__} has no batched form here")
    if not layouts:
        raise BatchedUnsupported("the model mixes layers of the two batched layouts")
    return layouts[0]


# Activations whose backward the written-out gradient knows: autograd's formula from the output.
# (forward, backward (grad, output) -> grad of the input)
_WRITTEN_OUT_ACTIVATIONS: dict[type, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    nn.ReLU: (torch.relu, lambda grad, out: torch.ops.aten.threshold_backward(grad, out, 0)),
    nn.Tanh: (torch.tanh, torch.ops.aten.tanh_backward),
    nn.Sigmoid: (torch.sigmoid, torch.ops.aten.sigmoid_backward),
}
_PASS_THROUGH = (nn.Identity, nn.Dropout)  # dropout is off during steps


class BatchedNetwork:
    """``net(thetas (N, D), x (N, B, ...)) -> outputs (N, B, ...)``: every pivot's
    network on its own minibatch in one pass (BatchNorm on each pivot's batch
    statistics). ``names`` and ``shapes`` are the flat vector's layout."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], shapes: tuple[torch.Size, ...], flat_inputs: bool):
        self.layout = _layout_for(model, flat_inputs)
        self.names, self.shapes = names, shapes
        self.numels = tuple(s.numel() for s in shapes)
        self._pivots = _Pivots()
        self.net = self._rebuild(copy.deepcopy(model).eval())
        owned = {n for n, _p in model.named_parameters()}
        read = set(self._reads)
        if read != owned or owned != set(names):
            raise BatchedUnsupported("the model's parameters are not all owned by batched layers")
        self._chain = self._written_out_chain(model)
        self._upstream: dict[tuple, tuple[Tensor, Tensor]] = {}  # the loss's backward seed, per shape

    def _written_out_chain(self, model: nn.Module) -> list[tuple[str, Any]] | None:
        """The layers of a Sequential of Linear layers and known activations as
        ("linear", (weight name, bias name or None)) and ("activation", (forward, backward));
        None where the backward is left to autograd."""
        if self.layout != "rows" or type(model) is not nn.Sequential:
            return None
        chain: list[tuple[str, Any]] = []
        for name, module in model.named_children():
            kind = type(module)
            if kind is nn.Linear:
                chain.append(("linear", (f"{name}.weight", f"{name}.bias" if module.bias is not None else None)))
            elif kind in _WRITTEN_OUT_ACTIVATIONS:
                chain.append(("activation", _WRITTEN_OUT_ACTIVATIONS[kind]))
            elif kind not in _PASS_THROUGH:
                return None
        return chain if chain and chain[0][0] == "linear" else None

    @property
    def gradient_written_out(self) -> bool:
        """Whether ``cross_entropy_forward`` and ``cross_entropy_backward`` cover this net."""
        return self._chain is not None

    def cross_entropy_forward(self, thetas: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, tuple]:
        """Each pivot's mean cross-entropy (N,) on its batch x (N, B, in), y (N, B),
        and what ``cross_entropy_backward`` needs (the parameters, the layers'
        inputs and outputs): the forward of ``pivot_losses("cross_entropy")``."""
        assert self._chain is not None
        n = x.shape[0]
        params = dict(zip(self.names, (p.view(n, *s) for p, s in zip(thetas.split(self.numels, dim=1), self.shapes))))
        saved: list[Tensor] = [x]
        for kind, what in self._chain:
            if kind == "linear":
                weight, bias = what
                rows = params[weight].transpose(1, 2)  # (N, in, out)
                if bias is None:
                    x = torch.bmm(x, rows)
                else:
                    x = torch.baddbmm(params[bias].unsqueeze(1), x, rows)  # (N, B, out)
            else:
                x = what[0](x)
            saved.append(x)  # saved[i + 1]: the output of layer i
        log_probs = x.log_softmax(-1)  # (N, B, K), as cross_entropy on (N B, K)
        losses = F.nll_loss(log_probs.flatten(0, 1), y.flatten(), reduction="none").view(n, -1).mean(1)
        return losses, (thetas, params, y, log_probs, saved)

    def cross_entropy_backward(self, saved: tuple) -> Tensor:
        """The gradient (N, D) of the summed losses with respect to each pivot's
        parameters: autograd's backward of ``cross_entropy_forward``, op for op."""
        assert self._chain is not None
        thetas, params, y, log_probs, outputs = saved  # outputs[0]: the input; outputs[i + 1]: layer i's output
        n, batch = log_probs.shape[:2]
        # sum -> mean over the batch -> nll_loss -> log_softmax, as autograd runs them
        key = (n, batch, log_probs.dtype, log_probs.device)
        if key not in self._upstream:  # the same for every call of this shape: made once
            upstream = log_probs.new_ones(n, 1).expand(n, batch) / batch
            self._upstream = {key: (upstream.reshape(-1), log_probs.new_zeros(()))}
        upstream, total_weight = self._upstream[key]
        flat = torch.ops.aten.nll_loss_backward(
            upstream, log_probs.flatten(0, 1), y.flatten(), None, 0, -100, total_weight
        )
        grad = torch.ops.aten._log_softmax_backward_data(flat.view_as(log_probs), log_probs, 2, log_probs.dtype)
        grads = thetas.new_empty(thetas.shape)  # (N, D)
        views = dict(zip(self.names, (p.view(n, *s) for p, s in zip(grads.split(self.numels, dim=1), self.shapes))))
        for i in range(len(self._chain) - 1, -1, -1):
            kind, what = self._chain[i]
            if kind == "activation":
                grad = what[1](grad, outputs[i + 1])
                continue
            weight, bias = what
            inputs = outputs[i]  # (N, B, in)
            views[weight].copy_(torch.bmm(inputs.transpose(1, 2), grad).transpose(1, 2))  # (N, out, in)
            if bias is not None:
                torch.sum(grad, 1, out=views[bias])
            if i > 0:
                grad = torch.bmm(grad, params[weight])  # (N, B, in)
        return grads

    def _rebuild(self, model: nn.Module) -> nn.Module:
        self._reads: list[str] = []
        replaced = self._replace("", model)
        return replaced

    def _replace(self, prefix: str, module: nn.Module) -> nn.Module:
        kind, dot = type(module), (prefix + "." if prefix else "")
        params = [dot + n for n, _p in module.named_parameters(recurse=False)]
        if kind is nn.Linear:
            self._reads += params
            return _Linear(self._pivots, dot, module.bias is not None, self.layout)
        if kind is nn.Conv2d:
            self._reads += params
            return _Conv2d(self._pivots, dot, module)
        if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            self._reads += params
            return _BatchNormLayer(self._pivots, dot, module, self.layout)
        if kind is cifar_models.ZeroPadShortcut:
            return _ZeroPadShortcut(self._pivots, module)
        if kind is cifar_models.DenseLayer:
            return _DenseLayer(self._pivots, self._replace(dot + "new", module.new))
        if params:
            raise BatchedUnsupported(f"{prefix}: {kind.__name__} holds parameters of its own")
        for name, child in list(module.named_children()):
            setattr(module, name, self._replace(dot + name, child))
        return module

    def __call__(self, thetas: Tensor, x: Tensor, memory_format: torch.memory_format | None = None) -> Tensor:
        n, batch = x.shape[:2]
        self._pivots.n = n
        parts = thetas.split(self.numels, dim=1)  # (N, numel) each
        self._pivots.params = {
            name: part.view(n, *shape) for name, part, shape in zip(self.names, parts, self.shapes)
        }
        try:
            if self.layout == "rows":
                return self.net(x)  # (N, B, ...)
            folded = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])  # (B, N C, ...)
            if memory_format is not None and folded.dim() == 4:
                folded = folded.contiguous(memory_format=memory_format)
            out = self.net(folded)  # (B, N K, ...)
            return out.view(batch, n, -1, *out.shape[2:]).transpose(0, 1)  # (N, B, K, ...)
        finally:
            self._pivots.params = {}


def pivot_losses(loss: str | Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """(outputs (N, B, ...), targets (N, B, ...)) -> each pivot's mean loss (N,),
    the same as the named loss of ``engine.energy.network.loss_function`` on each
    pivot's rows (a callable loss is mapped over the pivots with vmap)."""
    if callable(loss):
        return torch.func.vmap(loss)
    if loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none").view(
            y.shape[0], -1
        ).mean(1)
    if loss == "bce":
        return lambda out, y: F.binary_cross_entropy_with_logits(
            out.reshape(y.shape), y.to(out.dtype), reduction="none"
        ).reshape(y.shape[0], -1).mean(1)
    if loss == "mse":
        return lambda out, y: F.mse_loss(
            out.reshape(y.shape) if out.numel() == y.numel() else out, y.to(out.dtype), reduction="none"
        ).reshape(y.shape[0], -1).mean(1)
    raise ValueError(f"unknown loss {loss!r}")
