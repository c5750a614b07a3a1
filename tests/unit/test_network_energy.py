"""NetworkEnergy: a network's loss over flat parameter vectors."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from engine.networks import data, models
from engine.energy.base import Energy
from engine.energy.network import NetworkEnergy
from engine.networks.layout import ParameterLayout


@pytest.fixture(scope="module")
def digits():
    split = data.digits().train
    return split.inputs[:200], split.targets[:200]  # (200, 64), (200,)


def mlp_net(seed=0, **kwargs):
    torch.manual_seed(seed)
    return models.mlp(inputs=64, hidden=(16,), outputs=10, **kwargs)


def cnn_net(seed=0):
    torch.manual_seed(seed)
    return models.small_cnn(width=4, batchnorm=True)


def warm_buffers(net, x, steps=3, scale=1.0):
    """Give the BatchNorm running statistics some history, as a trained net has."""
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(x * scale)
    net.eval()
    return net


def near(theta, n, scale=0.05, seed=1):
    g = torch.Generator().manual_seed(seed)
    return theta + scale * torch.randn(n, theta.numel(), generator=g)


NETS = {
    "mlp": (mlp_net, lambda x: x),
    "cnn_bn": (cnn_net, lambda x: x.view(-1, 1, 8, 8)),
}


# ----- ParameterLayout -----------------------------------------------------------


def test_layout_round_trips_parameters_and_skips_buffers():
    net = models.mlp(inputs=3, hidden=(4,), outputs=2, batchnorm=True)
    layout = ParameterLayout.from_module(net)
    # Linear 3->4 (16), BN weight+bias (8), Linear 4->2 (10); running stats excluded.
    assert layout.dim == 16 + 8 + 10
    assert layout.names == ("0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias")
    assert layout.offsets == (0, 12, 16, 20, 24, 32)

    theta = torch.arange(layout.dim, dtype=torch.float32)
    views = layout.unflatten(theta)
    assert views["1.bias"].tolist() == [20.0, 21.0, 22.0, 23.0]
    assert views["3.weight"].shape == (2, 4)
    theta[20] = -1.0  # views share memory with the vector
    assert views["1.bias"][0].item() == -1.0

    other = models.mlp(inputs=3, hidden=(4,), outputs=2, batchnorm=True)
    layout.load_into(other, theta)
    assert torch.equal(layout.flatten(other), theta)
    assert torch.equal(other[0].weight, theta[:12].view(4, 3))


def test_layout_rejects_other_architectures_and_shapes():
    layout = ParameterLayout.from_module(models.mlp(inputs=3, hidden=(4,), outputs=2))
    with pytest.raises(ValueError, match="do not match"):
        layout.flatten(models.mlp(inputs=3, hidden=(5,), outputs=2))
    with pytest.raises(ValueError, match=r"shape \(26,\)"):
        layout.unflatten(torch.zeros(25))


# ----- the energy during NEB steps -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("strategy", ["vmap", "batched"])
def test_batched_strategies_and_loop_agree(digits, kind, strategy):
    make, shape = NETS[kind]
    x, y = digits
    net = make()
    pivots = near(ParameterLayout.from_module(net).flatten(net), 5)
    results = []
    for name in (strategy, "loop"):
        energy = NetworkEnergy(net, shape(x), y, batch_size=32, strategy=name)
        results.append(energy(pivots, torch.Generator().manual_seed(7)))
    (l_v, g_v), (l_l, g_l) = results
    assert l_v.shape == (5,) and g_v.shape == pivots.shape
    torch.testing.assert_close(l_v, l_l, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_v, g_l, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("strategy", ["batched", "vmap", "loop"])
def test_gradients_equal_autograd_on_each_pivots_own_batch(digits, kind, strategy):
    make, shape = NETS[kind]
    x, y = digits
    x = shape(x)
    net = make()
    layout = ParameterLayout.from_module(net)
    pivots = near(layout.flatten(net), 3)
    energy = NetworkEnergy(net, x, y, batch_size=20, strategy=strategy)
    losses, grads = energy(pivots, torch.Generator().manual_seed(3))

    # By hand: one permutation of the 200 samples serves 200 // 20 pivots in turn,
    # pivot i takes its i-th run of 20; BN in train mode.
    permutation = torch.randperm(200, generator=torch.Generator().manual_seed(3))
    for i in range(3):
        rows = permutation[20 * i : 20 * (i + 1)]
        module = copy.deepcopy(net).train()
        layout.load_into(module, pivots[i])
        loss = F.cross_entropy(module(x[rows]), y[rows])
        loss.backward()
        expected = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
        assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
        torch.testing.assert_close(grads[i], expected, rtol=1e-4, atol=1e-6)


def test_each_pivot_draws_its_own_batch_and_the_generator_replays_it(digits):
    x, y = digits
    net = mlp_net()
    theta = ParameterLayout.from_module(net).flatten(net)
    twins = theta.expand(2, -1).clone()  # two identical pivots
    energy = NetworkEnergy(net, x, y, batch_size=16, strategy="vmap")
    losses, grads = energy(twins, torch.Generator().manual_seed(5))
    assert losses[0] != losses[1]
    assert not torch.equal(grads[0], grads[1])
    again, grads_again = energy(twins, torch.Generator().manual_seed(5))
    assert torch.equal(losses, again) and torch.equal(grads, grads_again)
    # A batch as large as the data set is the whole set: identical pivots agree.
    whole, _ = energy(twins, torch.Generator().manual_seed(5), batch_size=500)
    assert whole[0] == whole[1]

    index = energy.batch_indices(4, 16, torch.Generator().manual_seed(0))
    assert index.shape == (4, 16)
    assert all(len(set(row.tolist())) == 16 for row in index)


def test_a_permutation_serves_several_pivots_in_turn(digits):
    x, y = digits  # 200 samples
    net = mlp_net()
    energy = NetworkEnergy(net, x, y, batch_size=60, strategy="vmap")
    index = energy.batch_indices(7, 60, torch.Generator().manual_seed(4))  # 3 pivots a permutation: 3 draws
    g = torch.Generator().manual_seed(4)
    permutations = [torch.randperm(200, generator=g)[:180].view(3, 60) for _ in range(3)]
    assert torch.equal(index, torch.cat(permutations)[:7])
    for first in (0, 3, 6):  # pivots sharing a permutation see disjoint batches
        rows = index[first : first + 3].reshape(-1).tolist()
        assert len(set(rows)) == len(rows)
    # a batch over half the data: one permutation per pivot
    index = energy.batch_indices(3, 101, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    assert torch.equal(index, torch.stack([torch.randperm(200, generator=g)[:101] for _ in range(3)]))
    assert energy.batch_indices(0, 60, g).shape == (0, 60)  # no pivots: nothing drawn
    losses, grads = energy(torch.zeros(0, energy.dim), g)
    assert losses.shape == (0,) and grads.shape == (0, energy.dim)


def test_call_leaves_running_buffers_and_the_users_model_alone(digits):
    """Steps change neither the user's network nor what the energy evaluates: the same
    losses and the same network (parameters and recomputed BatchNorm statistics) after."""
    x, y = digits
    images = x.view(-1, 1, 8, 8)
    net = warm_buffers(cnn_net(), images)
    before = copy.deepcopy(net.state_dict())
    energy = NetworkEnergy(net, images, y, batch_size=32, strategy="auto")
    pivots = near(energy.layout.flatten(net), 3)
    evaluated, state = energy.metrics(pivots, images, y), energy.network_state(pivots[0])
    for _ in range(5):  # both strategies run during auto's trial
        energy(pivots)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    for found, kept in zip(energy.metrics(pivots, images, y), evaluated):  # losses, errors
        assert torch.equal(found, kept)
    for key, value in energy.network_state(pivots[0]).items():
        assert torch.equal(value, state[key]), key


def test_chunking_gives_the_same_numbers(digits):
    x, y = digits
    net = cnn_net()
    pivots = near(ParameterLayout.from_module(net).flatten(net), 5)
    results = []
    for strategy in ("vmap", "batched"):
        for chunk in (None, 1, 2, 5):
            energy = NetworkEnergy(net, x.view(-1, 1, 8, 8), y, batch_size=16, strategy=strategy, chunk_size=chunk)
            results.append(energy(pivots, torch.Generator().manual_seed(2)))
    for losses, grads in results[1:]:
        torch.testing.assert_close(losses, results[0][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads, results[0][1], rtol=1e-4, atol=1e-6)


def test_auto_times_every_contender_then_keeps_one_and_resumes_with_it(digits):
    x, y = digits
    net = mlp_net()
    pivots = near(ParameterLayout.from_module(net).flatten(net), 4)
    auto = NetworkEnergy(net, x, y, batch_size=16, threads=2)
    loop = NetworkEnergy(net, x, y, batch_size=16, strategy="loop")
    assert isinstance(auto, Energy) and auto.strategy_used is None
    # every strategy at one thread and at the cap
    assert set(auto.contenders) == {(s, t) for s in ("batched", "vmap", "loop") for t in (1, 2)}
    threads_before = torch.get_num_threads()
    for call in range(auto.trial_length):  # warm-ups and timed calls of each: real results
        losses, _ = auto(pivots, torch.Generator().manual_seed(call))
        expected, _ = loop(pivots, torch.Generator().manual_seed(call))
        torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-6)
        assert torch.get_num_threads() == threads_before  # each call restores torch's count
    assert (auto.strategy_used, auto.threads_used) in auto.contenders
    state = auto.state_dict()
    assert state["strategy"] == auto.strategy_used and state["threads"] == auto.threads_used

    resumed = NetworkEnergy(net, x, y, batch_size=16, threads=2)
    resumed.load_state_dict(state)
    assert (resumed.strategy_used, resumed.threads_used) == (auto.strategy_used, auto.threads_used)
    a = auto(pivots, torch.Generator().manual_seed(9))
    b = resumed(pivots, torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

    with pytest.raises(ValueError, match="strategy"):
        NetworkEnergy(net, x, y, strategy="vmap").load_state_dict({"strategy": "loop"})


# ----- deterministic evaluation ----------------------------------------------------


def bn_midpoint(digits):
    """Two BN nets with different running statistics, their parameter midpoint, and an energy."""
    x, y = digits
    images = x.view(-1, 1, 8, 8)
    a = warm_buffers(cnn_net(seed=0), images, scale=1.0)
    b = warm_buffers(cnn_net(seed=1), images, scale=3.0)
    layout = ParameterLayout.from_module(a)
    mid = 0.5 * (layout.flatten(a) + layout.flatten(b))
    return images, y, a, b, layout, mid, NetworkEnergy(a, images, y, eval_batch_size=1000)


def test_evaluate_recalibrates_batchnorm_at_each_point(digits):
    images, y, a, b, layout, mid, energy = bn_midpoint(digits)
    (loss,) = energy.evaluate(mid[None]).tolist()

    # By hand: BN statistics of the midpoint from one pass over the training data.
    module = copy.deepcopy(a)
    layout.load_into(module, mid)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    module.train()
    with torch.no_grad():
        module(images)
        module.eval()
        recalibrated = F.cross_entropy(module(images), y).item()
    assert loss == pytest.approx(recalibrated, rel=1e-5)

    # Interpolated buffers (as the authors' code does) give another number.
    interpolated = copy.deepcopy(a)
    state = {k: 0.5 * (v + b.state_dict()[k]) if v.is_floating_point() else v for k, v in a.state_dict().items()}
    interpolated.load_state_dict(state)
    with torch.no_grad():
        stale = F.cross_entropy(interpolated.eval()(images), y).item()
    assert abs(stale - loss) > 1e-2

    # The minimum itself is also recalibrated, and the energy's copy never leaks.
    torch.testing.assert_close(energy.evaluate(mid[None]), torch.tensor([loss]))


def test_evaluate_on_a_calibration_subset_is_deterministic(digits):
    x, y = digits
    images = x.view(-1, 1, 8, 8)
    net = cnn_net()
    energy = NetworkEnergy(net, images, y, calibration_size=50)
    points = near(energy.layout.flatten(net), 2)
    first = energy.evaluate(points)
    assert torch.equal(first, energy.evaluate(points))
    assert not torch.equal(first, NetworkEnergy(net, images, y).evaluate(points))


def test_metrics_at_zero_parameters_are_hand_checked():
    # All weights zero: uniform logits. Cross-entropy ln 10, every argmax is class 0.
    split = data.digits().test
    net = mlp_net()
    energy = NetworkEnergy(net, split.inputs, split.targets, eval_batch_size=100)
    zero = torch.zeros(1, energy.dim)
    loss, error = energy.metrics(zero, split.inputs, split.targets)
    assert loss.item() == pytest.approx(math.log(10), rel=1e-6)
    assert error.item() == pytest.approx((split.targets != 0).float().mean().item())
    assert energy.evaluate(zero).item() == pytest.approx(math.log(10), rel=1e-6)

    # XOR with binary cross-entropy: logit 0 -> ln 2; "> 0" predicts 0, half wrong.
    points = data.xor()
    xor = NetworkEnergy(models.xor_net(), points.inputs, points.targets, loss="bce")
    zero = torch.zeros(1, xor.dim)
    loss, error = xor.metrics(zero, points.inputs, points.targets)
    assert loss.item() == pytest.approx(math.log(2)) and error.item() == 0.5
    losses, grads = xor(zero.expand(2, -1))
    assert torch.allclose(losses, torch.tensor(math.log(2)))
    # Output bias gradient: mean(sigmoid(0) - t) = 0.5 - 0.5 = 0; hidden weights see 0.
    assert torch.allclose(grads, torch.zeros_like(grads))


def test_mse_and_callable_losses_agree(digits):
    x, y = digits
    targets = torch.nn.functional.one_hot(y, 10).float()
    net = mlp_net()
    pivots = near(ParameterLayout.from_module(net).flatten(net), 2)
    named = NetworkEnergy(net, x, targets, loss="mse", batch_size=16, strategy="vmap")
    custom = NetworkEnergy(net, x, targets, loss=lambda o, t: ((o - t) ** 2).mean(), batch_size=16, strategy="loop")
    a = named(pivots, torch.Generator().manual_seed(0))
    b = custom(pivots, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    loss, error = named.metrics(pivots, x, targets)
    assert loss.shape == (2,) and torch.isnan(error).all()


def test_results_come_back_in_the_pivots_dtype(digits):
    x, y = digits
    net = mlp_net()
    energy = NetworkEnergy(net, x, y, strategy="loop")
    pivots = near(energy.layout.flatten(net), 2).double()
    losses, grads = energy(pivots)
    assert losses.dtype == grads.dtype == energy.evaluate(pivots).dtype == torch.float64


def test_bad_shapes_and_options_raise_clear_errors(digits):
    x, y = digits
    net = mlp_net()
    energy = NetworkEnergy(net, x, y)
    with pytest.raises(ValueError, match=rf"shape \(N, {energy.dim}\)"):
        energy(torch.zeros(energy.dim))
    with pytest.raises(ValueError, match=rf"shape \(N, {energy.dim}\)"):
        energy(torch.zeros(2, energy.dim + 1))
    with pytest.raises(ValueError, match="points of shape"):
        energy.evaluate(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="same number of rows"):
        NetworkEnergy(net, x, y[:10])
    with pytest.raises(ValueError, match="unknown loss"):
        NetworkEnergy(net, x, y, loss="hinge")
    with pytest.raises(ValueError, match="unknown strategy"):
        NetworkEnergy(net, x, y, strategy="fast")
    with pytest.raises(ValueError, match="chunk_size"):
        NetworkEnergy(net, x, y, chunk_size=0)


def test_recalibration_never_feeds_batchnorm_a_single_sample(digits):
    x, y = digits  # 200 samples: batches of 199 would leave one sample over
    net = warm_buffers(mlp_net(batchnorm=True), x)
    theta = ParameterLayout.from_module(net).flatten(net)[None]
    split = NetworkEnergy(net, x, y, eval_batch_size=199).evaluate(theta)
    whole = NetworkEnergy(net, x, y, eval_batch_size=1000).evaluate(theta)
    assert torch.isfinite(split).all()
    torch.testing.assert_close(split, whole, rtol=1e-2, atol=0)


def test_raw_images_are_prepared_everywhere_and_augmented_only_in_steps():
    """CIFAR-like uint8 images: normalised for every forward, cropped and flipped
    (on the generator's draw) only for the steps' minibatches. The loop and vmap are
    compared in float64 (see test_batched_covers_the_cifar_zoo: in float32, ReLU inputs
    within rounding of 0 make the two strategies' gradients differ on any CPU)."""
    from engine.networks.cifar import augment, normalise
    from engine.networks.cifar_models import resnet20

    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net = resnet20()
    theta = ParameterLayout.from_module(net).flatten(net)
    pivots = near(theta, 2, scale=0.01)

    def in_float64(x):
        return normalise(x).double()

    results = {
        s: NetworkEnergy(net.double(), images, labels, batch_size=8, strategy=s, prepare=in_float64,
                         augment=augment)(pivots.double(), torch.Generator().manual_seed(5))
        for s in ("loop", "vmap")
    }
    net.float()
    torch.testing.assert_close(results["loop"][0], results["vmap"][0], rtol=1e-12, atol=0)
    scale = results["loop"][1].abs().max(dim=1, keepdim=True).values  # (2, 1)
    assert ((results["loop"][1] - results["vmap"][1]).abs() / scale).max() < 1e-10

    energy = NetworkEnergy(net, images, labels, batch_size=8, strategy="vmap", prepare=normalise, augment=augment)
    first = energy(pivots, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first[0].double(), results["vmap"][0], rtol=1e-5, atol=0)  # float32 rounding
    again = energy(pivots, torch.Generator().manual_seed(5))
    assert torch.equal(again[0], first[0])  # the augmentation replays with the generator
    plain = NetworkEnergy(net, images, labels, batch_size=8, strategy="vmap", prepare=normalise)
    assert not torch.equal(plain(pivots, torch.Generator().manual_seed(5))[0], first[0])
    # evaluation sees prepared, never augmented, data
    by_hand = NetworkEnergy(net, normalise(images), labels, batch_size=8)
    torch.testing.assert_close(energy.evaluate(theta[None]), by_hand.evaluate(theta[None]))


def test_speed_options_keep_the_numbers(digits):
    """bf16 autocast, channels-last batches and torch.compile change how, not what:
    the same losses and gradients (bf16 to its precision), on the CPU as on a GPU."""
    x, y = digits
    net = cnn_net()
    theta = ParameterLayout.from_module(net).flatten(net)
    pivots = near(theta, 3)
    images = x.view(-1, 1, 8, 8)

    def run(**options):
        energy = NetworkEnergy(net, images, y, batch_size=32, strategy="loop", **options)
        return energy(pivots, torch.Generator().manual_seed(4)), energy.evaluate(pivots[:1])

    (losses, grads), evaluated = run()
    (cl_losses, cl_grads), cl_evaluated = run(channels_last=True)
    torch.testing.assert_close(cl_losses, losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cl_grads, grads, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cl_evaluated, evaluated, rtol=1e-5, atol=1e-6)
    (bf_losses, bf_grads), bf_evaluated = run(precision="bf16")
    torch.testing.assert_close(bf_losses, losses, rtol=0.05, atol=0.02)
    assert torch.nn.functional.cosine_similarity(bf_grads, grads, dim=1).min() > 0.95
    torch.testing.assert_close(bf_evaluated, evaluated, rtol=0.05, atol=0.02)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        NetworkEnergy(net, images, y, precision="fp8")


@pytest.mark.slow
@pytest.mark.timeout(300)  # C++ kernels compiled into a cold cache (a fresh TMPDIR): 35 s on an idle core
def test_compiled_per_pivot_loss_gives_the_same_numbers(digits):
    x, y = digits
    net = mlp_net()
    pivots = near(ParameterLayout.from_module(net).flatten(net), 3)
    plain = NetworkEnergy(net, x, y, batch_size=32, strategy="loop")
    compiled = NetworkEnergy(net, x, y, batch_size=32, strategy="loop", compile=True)
    expected = plain(pivots, torch.Generator().manual_seed(2))
    got = compiled(pivots, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-4, atol=1e-6)


def test_the_network_at_a_point_loads_into_the_model_and_scores_what_the_energy_says(digits):
    """network_state: parameters plus BN statistics recomputed for the point, so a
    plain model.load_state_dict + eval() gives the evaluated loss."""
    images, y, a, b, layout, mid, energy = bn_midpoint(digits)
    state = energy.network_state(mid)
    assert state.keys() == a.state_dict().keys() and all(v.device.type == "cpu" for v in state.values())
    fresh = cnn_net(seed=7)
    fresh.load_state_dict(state)
    with torch.no_grad():
        loaded = F.cross_entropy(fresh.eval()(images), y).item()
    assert loaded == pytest.approx(energy.evaluate(mid[None]).item(), rel=1e-5)
    assert torch.equal(layout.flatten(fresh), mid)
    with pytest.raises(ValueError, match="expected point of shape"):
        energy.network_state(mid[:-1])
