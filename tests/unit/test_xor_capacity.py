"""The XOR capacity argument of the paper (section 5.2, "Redundancy").

A 2-2-1 tanh net that fits XOR needs both hidden units ("Alice" and "Bob"). The
net with the two swapped computes the same function, yet every path between
the two misclassifies a point on the way: a barrier. Give both nets a third,
"helper" unit ("Charlie") with zero outgoing weight, and AutoNEB finds a path
at the minima's own loss: Charlie stands in for Bob while Bob moves. Two
independently trained 2-3-1 nets likewise connect at their own loss.

What a "minimum" is here: cross-entropy on separable data has none, since
scaling the weights up lowers it forever. A net "trained to a minimum" would
then depend on when training stopped, and a band could lower its saddle just
by growing its weights, so a barrier found would measure patience, not the
landscape. With weight decay WD the objective L + WD |theta|^2 / 2 has isolated
minima (checked below: zero gradient, positive definite Hessian), and the band
descends the same objective (BandOptions.weight_decay = WD). Barriers are read
in cross-entropy alone, as the paper reports them.

A yardstick: a misclassified point has loss >= ln 2, so a mean loss over the
four points below ln(2) / 4 = 0.173 means all four are classified correctly.
The swap barrier (> 0.3) lies above it, the helper path (< 0.023) below it.

Run this file as a script to repeat the measurement behind the helper test's
number of restarts (20 seeds; a few minutes).
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.networks import data, models
from engine.paths.autoneb import ConnectionResult, connect
from engine.energy.network import NetworkEnergy
from engine.networks.layout import ParameterLayout
from engine.paths.schedule import BandOptions, Cycle, Schedule

WD = 1e-3  # weight decay of training and band: minima at loss ~0.017, |theta| ~10
TOLERANCE = 0.005  # "at the endpoints' loss": saddle - max(endpoint losses)
BARRIER = 0.3  # the swap barrier the 2-2-1 net keeps, in cross-entropy

# Helper test: restarts from perturbed straight lines, the lowest saddle kept.
# Measured with this schedule over 20 seeds of minimum and helper (measure()):
# the straight start found the helper path 20 of 20 times (and 9 of 9 in a rerun),
# one perturbed start (noise 0.3) 58 of 80 times (0.72). Best of 3: a failure
# needs the straight start (< 3/29 at 95%) and two perturbed ones (0.28 each)
# to fail, below 1%. With a dead helper (zero incoming weights) the straight
# start never finds it (0 of 20) and best of 3 fails about 9% of the time.
RESTARTS = 3
RESTART_NOISE = 0.3
HELPER_SCALE = 0.1  # std of Charlie's incoming weights and bias


def xor_samples() -> tuple[Tensor, Tensor]:
    samples = data.xor()
    return samples.inputs.double(), samples.targets.double()  # (4, 2), (4,)


def xor_schedule(restarts: int = 1, noise: float = 0.0) -> Schedule:
    """AutoNEB for a 9- or 13-parameter net on 4 samples.

    Each step is one full-batch call over all pivots that costs about a
    millisecond whatever the pivot count, so pivots are cheap and steps are
    not: the band starts with 15 interior pivots instead of waiting for
    insertion to refine it. lr 0.3 with momentum 0.9 settled fastest of
    0.1 / 0.3 / 1.0 (none diverged); 6 cycles of 200 steps with the paper's
    20% insertion threshold bring the saddles to within 1e-3 of where longer
    runs end.
    """
    cycle = Cycle(steps=200, lr=0.3, optimiser="SGD", optimiser_args={"momentum": 0.9})
    band = BandOptions(initial_pivots=15, weight_decay=WD, restarts=restarts, restart_noise=noise)
    return Schedule(cycles=(cycle,) * 6, band=band, name="xor")


def objective(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy plus weight decay: the function whose minima we connect."""
    loss = F.binary_cross_entropy_with_logits(net(x).reshape(-1), y)
    return loss + WD / 2 * sum((p**2).sum() for p in net.parameters())


def train(hidden: int, seed: int) -> nn.Sequential:
    """A true minimum of cross-entropy + WD |theta|^2 / 2: L-BFGS in float64 from
    the zoo's initialisation, to a gradient below 1e-7."""
    torch.manual_seed(seed)
    net = models.xor_net(hidden).double()
    x, y = xor_samples()
    optimiser = torch.optim.LBFGS(
        net.parameters(), lr=1.0, max_iter=500, history_size=20,
        tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimiser.zero_grad()
        value = objective(net, x, y)
        value.backward()
        return value

    optimiser.step(closure)
    return net


def flat(net: nn.Module) -> Tensor:
    return ParameterLayout.from_module(net).flatten(net)  # (D,)


def swapped(net: nn.Sequential, i: int = 0, j: int = 1) -> nn.Sequential:
    """The same function with hidden units i and j exchanged: rows of the first
    layer's weight and bias, columns of the output weight."""
    other = copy.deepcopy(net)
    order = list(range(net[0].out_features))
    order[i], order[j] = j, i
    with torch.no_grad():
        other[0].weight.copy_(net[0].weight[order])
        other[0].bias.copy_(net[0].bias[order])
        other[2].weight.copy_(net[2].weight[:, order])
    return other


def with_helper(net: nn.Sequential, incoming: Tensor) -> nn.Sequential:
    """``net`` with one more hidden unit: incoming weights and bias ``incoming``
    (3,), outgoing weight zero, so the function (and the loss) is unchanged."""
    hidden = net[0].out_features
    bigger = models.xor_net(hidden + 1).double()
    with torch.no_grad():
        bigger[0].weight[:hidden] = net[0].weight
        bigger[0].weight[hidden] = incoming[:2]
        bigger[0].bias[:hidden] = net[0].bias
        bigger[0].bias[hidden] = incoming[2]
        bigger[2].weight[:, :hidden] = net[2].weight
        bigger[2].weight[:, hidden] = 0.0
        bigger[2].bias.copy_(net[2].bias)
    return bigger


def energy(hidden: int) -> NetworkEnergy:
    """Full-batch cross-entropy of a 2-hidden-1 net on the four XOR points."""
    x, y = xor_samples()
    return NetworkEnergy(models.xor_net(hidden).double(), x, y, loss="bce", batch_size=4, strategy="batched")


def endpoint_loss(result: ConnectionResult) -> float:
    return max(result.profile.losses[0], result.profile.losses[-1])


def helper_pair(seed: int, scale: float = HELPER_SCALE) -> tuple[Tensor, Tensor]:
    """A 2-2-1 minimum and its swap, each with the same helper unit."""
    net = train(2, seed)
    incoming = scale * torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return flat(with_helper(net, incoming)), flat(with_helper(swapped(net), incoming))


# ----- the minima -------------------------------------------------------------------


def xor_loss(net: nn.Module) -> float:
    """Cross-entropy alone (no weight decay) over the four points."""
    x, y = xor_samples()
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(net(x).reshape(-1), y).item()


@pytest.mark.parametrize("hidden, seed", [(2, 0), (2, 1), (3, 1), (3, 5)])
def test_trained_nets_are_true_minima_that_fit_xor(hidden, seed):
    net = train(hidden, seed)
    x, y = xor_samples()
    theta = flat(net)
    layout = ParameterLayout.from_module(net)

    def f(vector: Tensor) -> Tensor:
        return objective_at(net, layout.unflatten(vector), x, y)

    gradient = torch.autograd.functional.jacobian(f, theta)
    hessian = torch.autograd.functional.hessian(f, theta)  # (D, D)
    assert gradient.norm() < 1e-6
    assert torch.linalg.eigvalsh(hessian).min() > 1e-5  # isolated: weight decay breaks every flat direction
    logits = net(x).reshape(-1)
    assert ((logits > 0).double() == y).all()
    # below the yardstick ln(2) / 4 (see above), yet above zero: weight decay keeps the logits finite
    assert 0 < xor_loss(net) < math.log(2) / 4


def objective_at(net: nn.Module, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    logits = torch.func.functional_call(net, params, (x,)).reshape(-1)
    return F.binary_cross_entropy_with_logits(logits, y) + WD / 2 * sum((p**2).sum() for p in params.values())


def test_swap_and_helper_leave_the_function_unchanged():
    net = train(2, 0)
    x, _ = xor_samples()
    incoming = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    for other in (swapped(net), with_helper(net, incoming), with_helper(swapped(net), incoming)):
        torch.testing.assert_close(other(x), net(x), rtol=0, atol=1e-12)
    a, b = flat(net), flat(swapped(net))
    # layout (9,): W1 (2, 2), b1 (2,), W2 (1, 2), b2 (1,)
    assert torch.equal(b[:4], torch.cat([a[2:4], a[0:2]]))
    assert torch.equal(b[4:6], a[[5, 4]]) and torch.equal(b[6:8], a[[7, 6]]) and b[8] == a[8]
    assert (a - b).norm() > 5.0  # a distinct point of parameter space, not the same minimum


# ----- the claims of section 5.2 -------------------------------------------------


def test_swapping_the_two_hidden_units_of_a_2_2_1_net_costs_a_barrier():
    net = train(2, 0)
    result = connect(energy(2), flat(net), flat(swapped(net)), xor_schedule(restarts=3, noise=RESTART_NOISE), seed=0)
    ends = endpoint_loss(result)
    assert ends == pytest.approx(xor_loss(net), rel=1e-5)  # the band's ends: the minimum and its swap
    assert len(result.restart_saddles) == 3
    barriers = [saddle - ends for saddle in result.restart_saddles]
    assert min(barriers) > BARRIER, barriers  # every start, straight or perturbed
    assert result.saddle_energy - ends > BARRIER
    # the straight segment passes far higher: the band did real work
    assert result.linear_saddle_energy - ends > 1.5
    assert result.linear_saddle_energy - ends > 4 * (result.saddle_energy - ends)


def test_independent_2_3_1_minima_connect_at_their_loss():
    # Under weight decay a 2-3-1 minimum spreads the work over all three units,
    # so a path must first hand one unit's share to the others. From the straight
    # start 4 of 10 measured pairs of seeds 0..9 found that path (excess 0.003 to
    # 0.006); the others stalled at a swap-like local MEP (excess ~0.34), which
    # restarts are for (see the helper test). Seeds 1 and 5 are a pair of the
    # two different minima (loss 0.01433 and 0.01558) that connects.
    start, end = train(3, 1), train(3, 5)
    result = connect(energy(3), flat(start), flat(end), xor_schedule(), seed=0)
    ends = endpoint_loss(result)
    assert (flat(start) - flat(end)).norm() > 5.0  # not one minimum twice
    assert result.saddle_energy - ends < TOLERANCE
    assert result.linear_saddle_energy - ends > 0.5  # the straight segment does not


def test_a_helper_unit_removes_the_barrier_between_swapped_minima():
    start, end = helper_pair(seed=0)
    schedule = xor_schedule(restarts=RESTARTS, noise=RESTART_NOISE)
    result = connect(energy(3), start, end, schedule, seed=0)
    ends = endpoint_loss(result)
    assert ends == pytest.approx(xor_loss(train(2, 0)), rel=1e-5)  # the helper's zero outgoing weight changes nothing
    assert result.saddle_energy - ends < TOLERANCE
    assert result.saddle_energy < math.log(2) / 4  # every point classified correctly all the way
    assert result.linear_saddle_energy - ends > 1.5
    # Charlie did the work: his outgoing weight (index 11 of (13,)) grows on the path
    assert result.pivots[:, 11].abs().max() > 1.0


def test_a_dead_helper_unit_cannot_be_recruited_from_the_straight_line():
    """With zero incoming and outgoing weights every gradient on the helper's
    parameters vanishes (its output tanh(0) = 0 meets a zero outgoing weight),
    so the band never moves them and keeps the 2-2-1 barrier."""
    start, end = helper_pair(seed=0, scale=0.0)
    result = connect(energy(3), start, end, xor_schedule(), seed=0)
    helper = [4, 5, 8, 11]  # W1[2, :], b1[2], W2[0, 2] in the layout (13,): W1 (3, 2), b1 (3,), W2 (1, 3), b2
    assert torch.equal(result.pivots[:, helper], torch.zeros(result.pivots.shape[0], 4, dtype=torch.float64))
    assert result.saddle_energy - endpoint_loss(result) > BARRIER


# ----- the measurement behind RESTARTS ---------------------------------------------


def measure(seeds: int = 20, restarts: int = 5) -> None:
    """Per seed (a 2-2-1 minimum and helper weights): the excess saddle of each
    restart; then how often the straight start, one perturbed start, and the
    best of the first k restarts reach TOLERANCE."""
    found: list[list[bool]] = []
    seed = 100
    while len(found) < seeds:
        net = train(2, seed)
        x, y = xor_samples()
        if not bool(((net(x).reshape(-1) > 0).double() == y).all()):
            seed += 1  # a local minimum that does not fit XOR: not a case of the argument
            continue
        start, end = helper_pair(seed)
        result = connect(energy(3), start, end, xor_schedule(restarts=restarts, noise=RESTART_NOISE), seed=seed)
        ends = endpoint_loss(result)
        excess = [s - ends for s in result.restart_saddles]
        found.append([e < TOLERANCE for e in excess])
        print(seed, [round(e, 4) for e in excess], flush=True)
        seed += 1
    hits = torch.tensor(found, dtype=torch.float64)  # (seeds, restarts)
    print(f"straight start: {hits[:, 0].mean():.2f}, one perturbed start: {hits[:, 1:].mean():.2f}")
    for k in range(1, restarts + 1):
        print(f"best of {k}: {hits[:, :k].amax(dim=1).mean():.2f}")


if __name__ == "__main__":
    measure()
