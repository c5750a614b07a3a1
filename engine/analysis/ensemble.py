"""Path ensembles: networks sampled along a path, their softmax predictions
averaged, against each end minimum alone and the two minima's ensemble."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from engine.band.geometry import points_at
from engine.networks.layout import ParameterLayout


class Predictor:
    """Class probabilities of a network at a flat parameter vector (D,): eval mode,
    BatchNorm statistics first recomputed for that point on ``calibration`` inputs
    (the exact average over near-equal batches), never interpolated."""

    def __init__(
        self,
        model: nn.Module,
        calibration: Tensor,
        prepare: Callable[[Tensor], Tensor] | None = None,
        batch_size: int = 1024,
        device: torch.device | str | None = None,
    ):
        self.device = torch.device(device) if device is not None else calibration.device
        self.network = copy.deepcopy(model).to(self.device).eval()
        self.network.requires_grad_(False)
        self.layout = ParameterLayout.from_module(self.network)
        self.batchnorms = [m for m in self.network.modules() if isinstance(m, _BatchNorm)]
        self.calibration = calibration.to(self.device)
        self.prepare = prepare or (lambda x: x)
        self.batch_size = batch_size

    def probabilities(self, theta: Tensor, inputs: Tensor) -> Tensor:
        """Softmax outputs (n, C) of the network at ``theta`` (D,) on ``inputs`` (n, ...)."""
        self.layout.load_into(self.network, theta.to(self.device))
        if self.batchnorms:
            self._recalibrate()
        parts = []
        with torch.no_grad():
            for s in range(0, inputs.shape[0], self.batch_size):
                x = self.prepare(inputs[s : s + self.batch_size].to(self.device))
                parts.append(torch.softmax(self.network(x).to(torch.float64), dim=1))
        return torch.cat(parts)

    def _recalibrate(self) -> None:
        momenta = [bn.momentum for bn in self.batchnorms]
        for bn in self.batchnorms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: exact over the batches
            bn.train()
        try:
            batches = -(-self.calibration.shape[0] // self.batch_size)
            with torch.no_grad():
                for batch in self.calibration.tensor_split(batches):
                    self.network(self.prepare(batch))
        finally:
            for bn, momentum in zip(self.batchnorms, momenta):
                bn.momentum = momentum
                bn.eval()


def accuracy(probabilities: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose most probable class is the target: probabilities (n, C)."""
    return float((probabilities.argmax(dim=1) == targets.to(probabilities.device)).to(torch.float64).mean())


@dataclass(frozen=True)
class PathEnsemble:
    """Test accuracy of a path ensemble and of what it is compared with."""

    members: int  # k networks along the path
    positions: list[float]  # their arc-length fractions (0 .. 1, ends included)
    member_accuracies: list[float]  # each member alone
    path: float  # the k members' averaged softmax
    start: float  # the path's first minimum alone
    end: float  # its last minimum alone
    pair: float  # the two minima's averaged softmax


def path_ensemble(predictor: Predictor, pivots: Tensor, inputs: Tensor, targets: Tensor, k: int = 5) -> PathEnsemble:
    """Average the softmax of ``k`` networks at equal arc-length fractions along the
    path ``pivots`` (N, D), both ends included, and compare on (inputs, targets)."""
    if k < 2:
        raise ValueError(f"a path ensemble needs at least 2 members (the ends), got {k}")
    fractions = torch.linspace(0.0, 1.0, k, dtype=torch.float64)
    members = points_at(pivots, fractions)  # (k, D)
    members[0], members[-1] = pivots[0], pivots[-1]
    probabilities = [predictor.probabilities(theta, inputs) for theta in members]  # k x (n, C)
    return PathEnsemble(
        members=k,
        positions=fractions.tolist(),
        member_accuracies=[accuracy(p, targets) for p in probabilities],
        path=accuracy(torch.stack(probabilities).mean(dim=0), targets),
        start=accuracy(probabilities[0], targets),
        end=accuracy(probabilities[-1], targets),
        pair=accuracy((probabilities[0] + probabilities[-1]) / 2, targets),
    )
