"""The batched strategy: every pivot's network written out as one batched network."""

import pytest
import torch
from torch import nn

from engine.energy.batched import BatchedNetwork, pivot_losses
from engine.energy.network import NetworkEnergy
from engine.networks.layout import ParameterLayout
from engine.networks import data, models


@pytest.fixture(scope="module")
def digits():
    split = data.digits().train
    return split.inputs[:200], split.targets[:200]  # (200, 64), (200,)


def pivots_near(net, n, scale=0.05, seed=1):
    theta = ParameterLayout.from_module(net).flatten(net)
    g = torch.Generator().manual_seed(seed)
    return theta + scale * torch.randn(n, theta.numel(), generator=g)  # (n, D)


def both(net, x, y, pivots, batch, seed=11, **options):
    """(losses, grads) of the batched strategy and of the loop, on the same per-pivot batches."""
    out = []
    for strategy in ("batched", "loop"):
        energy = NetworkEnergy(net, x, y, batch_size=batch, strategy=strategy, **options)
        out.append(energy(pivots, torch.Generator().manual_seed(seed)))
    return out, energy


def seeded(make):
    torch.manual_seed(0)
    return make()


CASES = {
    # name: (factory, input shape per sample)
    "digits_mlp": (lambda: models.mlp(64, (32,), 10), (64,)),
    "mlp_batchnorm_tanh": (lambda: models.mlp(64, (16, 8), 10, activation="tanh", batchnorm=True), (64,)),
    "small_cnn_bn": (lambda: models.small_cnn(width=4, batchnorm=True), (1, 8, 8)),
    "small_cnn": (lambda: models.small_cnn(width=4, batchnorm=False), (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_gradients_equal_the_loops_on_each_pivots_own_batch(digits, name):
    make, shape = CASES[name]
    x, y = digits
    net = seeded(make)
    pivots = pivots_near(net, 4)
    ((losses, grads), (l_loop, g_loop)), energy = both(net, x.view(-1, *shape), y, pivots, 24)
    assert energy.batched_available
    torch.testing.assert_close(losses, l_loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads, g_loop, rtol=1e-4, atol=1e-6)


WRITTEN_OUT = {
    "relu": lambda: models.mlp(64, (32,), 10),
    "tanh_two_layers": lambda: models.mlp(64, (16, 8), 10, activation="tanh"),
    "sigmoid_no_bias_dropout": lambda: nn.Sequential(
        nn.Linear(64, 12, bias=False), nn.Sigmoid(), nn.Dropout(0.2), nn.Linear(12, 10), nn.Identity()
    ),
}


def batched_network(net) -> BatchedNetwork:
    layout = ParameterLayout.from_module(net)
    return BatchedNetwork(net, layout.names, layout.shapes, flat_inputs=True)


def autograd_of(net, pivots, x, y, loss="cross_entropy"):
    """(losses, grads) of the batched network's forward under autograd: what the energy
    runs when it leaves the backward to autograd."""
    thetas = pivots.clone().requires_grad_(True)
    losses = pivot_losses(loss)(batched_network(net)(thetas, x), y)  # (N,)
    (grads,) = torch.autograd.grad(losses.sum(), thetas)
    return losses.detach(), grads


@pytest.mark.parametrize("name", sorted(WRITTEN_OUT))
def test_the_written_out_backward_is_autograds_bit_for_bit(digits, name):
    x, y = digits
    net = seeded(WRITTEN_OUT[name])
    written = batched_network(net)
    assert written.gradient_written_out
    pivots = pivots_near(net, 5)
    energy = NetworkEnergy(net, x, y, batch_size=24, strategy="batched")
    index = energy.batch_indices(5, 24, torch.Generator().manual_seed(2))  # the energy's own draw below
    losses, saved = written.cross_entropy_forward(pivots, x[index], y[index])
    grads = written.cross_entropy_backward(saved)
    expected, expected_grads = autograd_of(net, pivots, x[index], y[index])
    assert torch.equal(losses, expected) and torch.equal(grads, expected_grads)
    # and it is what the energy's batched strategy gives, bit for bit
    got, got_grads = energy(pivots, torch.Generator().manual_seed(2))
    assert torch.equal(got, losses) and torch.equal(got_grads, grads)


def test_the_backward_is_left_to_autograd_outside_linear_chains_and_cross_entropy(digits):
    x, y = digits
    assert not batched_network(seeded(CASES["mlp_batchnorm_tanh"][0])).gradient_written_out  # BatchNorm in the chain
    net = seeded(lambda: models.mlp(64, (8,), 1))  # a chain the cross-entropy backward covers, under MSE
    pivots = pivots_near(net, 3)
    target = y.float() / 10
    energy = NetworkEnergy(net, x, target, loss="mse", batch_size=16, strategy="batched")
    index = energy.batch_indices(3, 16, torch.Generator().manual_seed(4))
    losses, grads = energy(pivots, torch.Generator().manual_seed(4))
    expected, expected_grads = autograd_of(net, pivots, x[index], target[index], loss="mse")
    assert torch.equal(losses, expected) and torch.equal(grads, expected_grads)
    # bf16 runs in bf16 (under autocast), not in the float32 written-out backward
    net = seeded(CASES["digits_mlp"][0])
    pivots = pivots_near(net, 3)
    fp32, bf16 = (NetworkEnergy(net, x, y, batch_size=16, strategy="batched", precision=precision)(
        pivots, torch.Generator().manual_seed(4)) for precision in ("fp32", "bf16"))
    assert not torch.equal(bf16[0], fp32[0])
    torch.testing.assert_close(bf16[0], fp32[0], rtol=0.05, atol=0.02)  # bf16's 8-bit mantissa, as below


@pytest.mark.parametrize("name", ["resnet20", "densenet40_12"])
def test_batched_covers_the_cifar_zoo(name):
    """Residual blocks with zero-padding shortcuts and dense layers' concatenations
    stay per pivot (small images and few pivots: the same layers, quickly).

    Gradients are compared in float64: in float32 a ReLU input within rounding of 0 is
    taken one way by one strategy and the other way by the other, and DenseNet-40 has
    about 10^7 of them on these batches, so float32 gradients differ by up to 1e-3 of
    their scale on some batches of any CPU. In float64 rounding is ~1e-16 of the values,
    a kink that close to 0 is improbable (~10^7 x 1e-13), and the two strategies
    agree to float64 rounding grown over 40 layers. The float32 losses, which a kink
    changes only at second order, are checked against the float64 ones."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (48,), generator=g)
    net = seeded(models.ZOO[name]).double()
    pivots = pivots_near(net, 2, scale=0.01)  # (2, D) float64
    ((losses, grads), (l_loop, g_loop)), _ = both(net, x, y, pivots, 16, seed=2)
    assert grads.dtype == torch.float64
    torch.testing.assert_close(losses, l_loop, rtol=1e-12, atol=0)
    scale = g_loop.abs().max(dim=1, keepdim=True).values  # BatchNorm over few values: the gradient's scale
    assert ((grads - g_loop).abs() / scale).max() < 1e-10

    # float32 rounding over ~40 layers: measured up to 3e-7 of the loss
    ((l32, _), (l32_loop, _)), _ = both(net.float(), x.float(), y, pivots.float(), 16, seed=2)
    for float32_losses in (l32, l32_loop):
        torch.testing.assert_close(float32_losses.double(), l_loop, rtol=1e-5, atol=0)


def test_batched_keeps_the_numbers_under_the_speed_options_and_other_losses(digits):
    x, y = digits
    images = x.view(-1, 1, 8, 8)
    net = seeded(lambda: models.small_cnn(width=4, batchnorm=True))
    pivots = pivots_near(net, 3)
    ((cl, cl_g), (loop, loop_g)), _ = both(net, images, y, pivots, 16, channels_last=True)
    torch.testing.assert_close(cl, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cl_g, loop_g, rtol=1e-4, atol=1e-6)
    ((bf, bf_g), _), _ = both(net, images, y, pivots, 16, precision="bf16")
    torch.testing.assert_close(bf, loop, rtol=0.05, atol=0.02)
    assert torch.nn.functional.cosine_similarity(bf_g, loop_g, dim=1).min() > 0.95

    # regression and a callable loss (mapped over the pivots)
    mlp = seeded(lambda: models.mlp(64, (8,), 1))
    pivots = pivots_near(mlp, 3)
    target = y.float() / 10
    for loss in ("mse", lambda out, t: ((out.squeeze(1) - t) ** 2).mean()):
        ((l_b, g_b), (l_l, g_l)), _ = both(mlp, x, target, pivots, 16, loss=loss)
        torch.testing.assert_close(l_b, l_l, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g_b, g_l, rtol=1e-4, atol=1e-6)
    binary = (y % 2).float()
    ((l_b, g_b), (l_l, g_l)), _ = both(mlp, x, binary, pivots, 16, loss="bce")
    torch.testing.assert_close(l_b, l_l, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_b, g_l, rtol=1e-4, atol=1e-6)


class _Doubled(nn.Sequential):
    """A Sequential whose forward is its own: the batched form cannot know it."""

    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: nn.Sequential(nn.Linear(64, 8), nn.LayerNorm(8), nn.Linear(8, 10)), "LayerNorm"),
        (lambda: _Doubled(nn.Linear(64, 10)), "_Doubled"),
    ],
)
def test_other_layers_fall_back_to_vmap_and_the_loop(digits, make, why):
    x, y = digits
    net = seeded(make)
    auto = NetworkEnergy(net, x, y, batch_size=16, threads=1)
    assert not auto.batched_available and why in auto.batched_unsupported
    assert {s for s, _t in auto.contenders} == {"vmap", "loop"}
    with pytest.raises(ValueError, match=f"strategy 'batched' does not cover this model.*{why}"):
        NetworkEnergy(net, x, y, strategy="batched")
    pivots = pivots_near(net, 2)
    for _ in range(auto.trial_length):
        auto(pivots)
    assert auto.strategy_used in ("vmap", "loop") and auto.threads_used == 1


def test_a_fixed_strategy_runs_at_the_cap_and_restores_torchs_thread_count(digits):
    x, y = digits
    net = seeded(lambda: models.mlp(64, (8,), 10))
    before = torch.get_num_threads()
    seen = []

    def loss(out, t):  # notes the thread count the energy's call runs at
        seen.append(torch.get_num_threads())
        return torch.nn.functional.cross_entropy(out, t)

    energy = NetworkEnergy(net, x, y, loss, batch_size=16, strategy="batched", threads=1)
    assert energy.contenders == () and energy.threads_used == 1
    energy(pivots_near(net, 2))
    assert seen and set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        NetworkEnergy(net, x, y, threads=0)


def calls_until_chosen(energy, pivots) -> int | None:
    """How many calls ``energy`` takes to end its auto trial and choose (``strategy_used``);
    None if it has not chosen after a whole trial's length."""
    for calls in range(1, energy.trial_length + 1):
        energy(pivots)
        if energy.strategy_used is not None:
            return calls
    return None


def test_a_trial_resumes_where_it_stood_and_a_choice_from_before_the_thread_choice_loads(digits):
    x, y = digits
    net = seeded(lambda: models.mlp(64, (8,), 10))
    pivots = pivots_near(net, 2)
    first = NetworkEnergy(net, x, y, batch_size=16, threads=2)
    for _ in range(3):
        first(pivots)
    assert first.strategy_used is None  # three calls into its trial
    # resumed: it runs the rest of the trial, not all of it again, then keeps one contender
    resumed = NetworkEnergy(net, x, y, batch_size=16, threads=2)
    resumed.load_state_dict(first.state_dict())
    assert resumed.strategy_used is None
    assert calls_until_chosen(resumed, pivots) == resumed.trial_length - 3
    chosen = (resumed.strategy_used, resumed.threads_used)
    assert chosen in resumed.contenders
    for _ in range(2):
        resumed(pivots)
        assert (resumed.strategy_used, resumed.threads_used) == chosen
    # other contenders (another cap): the trial starts again, all of it
    other_cap = NetworkEnergy(net, x, y, batch_size=16, threads=1)
    other_cap.load_state_dict(first.state_dict())
    assert calls_until_chosen(other_cap, pivots) == other_cap.trial_length
    old = NetworkEnergy(net, x, y, batch_size=16, threads=2)
    old.load_state_dict({"strategy": "vmap", "trial_calls": 8, "seconds_per_pivot": {"vmap": 1.0, "loop": 2.0}})
    assert (old.strategy_used, old.threads_used) == ("vmap", 2)
