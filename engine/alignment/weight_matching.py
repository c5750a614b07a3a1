"""Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", algorithm 2).

Find permutations P_g of network B's hidden units, one per permutation group
(``engine.alignment.groups``), that bring B closest to network A:

    maximise  sum over tensors  < W^A , P(W^B) >      (P permutes every axis by its groups)

by coordinate descent: visit the groups in random order; with the others
fixed, P_g solves a linear assignment with the cost

    C_g[i, j] = sum over the axes g permutes  < W^A row i , P_other(W^B) row j >

(rows taken along that axis; a convolution's rows hold its kernels), solved by
``scipy.optimize.linear_sum_assignment`` (maximise). Sweeps repeat until no
group improves. A group's objective is linear in P_g when no tensor is
permuted twice by g, so every accepted change raises the sum of inner products
and lowers the distance |A - P(B)| (permutations keep norms): matching never
moves B away from A. Permuting changes nothing the network computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from engine.alignment.groups import Axis, Group, PermutationSpec, permutation_spec
from engine.networks.layout import ParameterLayout


def axis_index(axis: Axis, permutations: list[Tensor]) -> Tensor:
    """The gather index of a permuted axis: entry i of the result is entry index[i] of the original."""
    pieces, offset = [], 0
    for group, count in axis.runs:
        piece = torch.arange(count) if group is None else permutations[group]
        pieces.append(piece + offset)
        offset += count
    index = torch.cat(pieces)  # (channels,)
    if axis.block > 1:
        index = (index.unsqueeze(1) * axis.block + torch.arange(axis.block)).reshape(-1)
    return index


def permute(spec: PermutationSpec, state: dict[str, Tensor], permutations: list[Tensor],
            skip: tuple[str, int] | None = None) -> dict[str, Tensor]:
    """``state`` (name -> tensor) with every axis of the spec permuted; names the
    spec does not list are returned as they are. ``skip``: leave that one axis."""
    out = dict(state)
    for name, dims in spec.axes.items():
        if name not in state:
            continue
        tensor = state[name]
        for dim, axis in dims.items():
            if (name, dim) != skip:
                tensor = tensor.index_select(dim, axis_index(axis, permutations).to(tensor.device))
        out[name] = tensor
    return out


def random_permutations(spec: PermutationSpec, generator: torch.Generator | None = None) -> list[Tensor]:
    """One random permutation per group (for planting a known permutation in a copy)."""
    return [torch.randperm(group.size, generator=generator) for group in spec.groups]


def _rows(tensor: Tensor, dim: int, first: int, count: int, block: int) -> Tensor:
    """The ``count`` channels from ``first`` on along ``dim``, one row per channel: (count, rest)."""
    moved = tensor.movedim(dim, 0)[first * block : (first + count) * block]
    return moved.reshape(count, -1).to(torch.float64)


def weight_matching(
    spec: PermutationSpec,
    reference: dict[str, Tensor],
    other: dict[str, Tensor],
    *,
    seed: int = 0,
    max_sweeps: int = 100,
) -> tuple[list[Tensor], int]:
    """Permutations of ``other``'s groups that bring it closest to ``reference``
    (both name -> tensor; only the names both hold are matched), and the sweeps run."""
    permutations = [torch.arange(group.size) for group in spec.groups]
    where = [
        [(name, dim, first, block) for name, dim, first, block in spec.tensors_of(g)
         if name in reference and name in other]
        for g in range(len(spec.groups))
    ]
    generator = torch.Generator().manual_seed(seed)
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        improved = False
        for g in torch.randperm(len(spec.groups), generator=generator).tolist():
            size = spec.groups[g].size
            cost = torch.zeros(size, size, dtype=torch.float64)  # (n, n): A's channel i with B's j
            for name, dim, first, block in where[g]:
                b = permute(spec, {name: other[name]}, permutations, skip=(name, dim))[name]
                cost += _rows(reference[name], dim, first, size, block) @ _rows(b, dim, first, size, block).T
            _, columns = linear_sum_assignment(cost.numpy(), maximize=True)
            candidate = torch.as_tensor(columns, dtype=torch.long)
            rows = torch.arange(size)
            before = cost[rows, permutations[g]].sum().item()
            after = cost[rows, candidate].sum().item()
            if after > before + 1e-12 * max(1.0, abs(before)):
                permutations[g] = candidate
                improved = True
        if not improved:
            break
    return permutations, sweeps


@dataclass
class Alignment:
    """Network B permuted to match network A."""

    params: Tensor  # (D,) B's flat parameters, permuted
    buffers: dict[str, Tensor]  # B's buffers (BatchNorm statistics), permuted with their layers
    permutations: list[Tensor]  # one per group: new channel i is B's channel permutations[g][i]
    groups: list[Group]
    sweeps: int
    distance_before: float  # |A - B|
    distance_after: float  # |A - P(B)|


def _flat(layout: ParameterLayout, named: dict[str, Tensor]) -> Tensor:
    return torch.cat([named[name].reshape(-1) for name in layout.names])


def align(
    model: nn.Module,
    reference: Tensor,
    params: Tensor,
    *,
    buffers: dict[str, Tensor] | None = None,
    seed: int = 0,
    max_sweeps: int = 100,
    spec: PermutationSpec | None = None,
) -> Alignment:
    """Permute the hidden units of the network ``params`` (flat (D,), in the order of
    ``ParameterLayout.from_module(model)``) to match the network ``reference`` (D,);
    ``buffers`` (name -> tensor, e.g. BatchNorm running statistics) follow their
    layers. The matching uses the parameters only. ``model`` gives the architecture
    (its own weights are not used); a ValueError names a layer it cannot analyse."""
    layout = ParameterLayout.from_module(model)
    for what, vector in (("reference", reference), ("params", params)):
        if vector.shape != (layout.dim,):
            raise ValueError(f"{what} must be a flat vector of {layout.dim} entries (the model's parameters), "
                             f"got shape {tuple(vector.shape)}")
    spec = spec if spec is not None else permutation_spec(model)
    a = layout.unflatten(reference.detach())
    b = layout.unflatten(params.detach())
    permutations, sweeps = weight_matching(spec, a, b, seed=seed, max_sweeps=max_sweeps)
    aligned = _flat(layout, permute(spec, b, permutations))
    moved_buffers = permute(spec, dict(buffers), permutations) if buffers else {}
    return Alignment(
        params=aligned,
        buffers=moved_buffers,
        permutations=permutations,
        groups=list(spec.groups),
        sweeps=sweeps,
        distance_before=(reference.double() - params.double()).norm().item(),
        distance_after=(reference.double() - aligned.double()).norm().item(),
    )
