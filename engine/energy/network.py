"""A neural network's loss as an Energy over flat parameter vectors.

A pivot is the flat vector theta (D,) of all the network's parameters (never
its buffers: BatchNorm running statistics are not path coordinates). During
NEB steps each pivot's loss is the mean loss on its own random minibatch, with
BatchNorm normalising by that minibatch's statistics. When a point of a path is
*evaluated*, its BatchNorm statistics are first recomputed for that point on
training data, never interpolated.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from engine.energy.base import Work
from engine.energy.batched import BatchedNetwork, BatchedUnsupported, pivot_losses
from engine.networks.layout import ParameterLayout
from engine.networks.loss import Loss, loss_function, takes_model
from engine.networks.stream import Column
from engine.threads import intra_op_threads

STRATEGIES = ("auto", "batched", "vmap", "loop")
PRECISIONS = ("fp32", "bf16")
# The auto strategy's trial: every contender (a strategy at a thread count) once as a
# warm-up, then TIMED_ROUNDS timed calls each, interleaved; the fastest timed call
# of each counts (the least disturbed by whatever else the machine is doing).
TIMED_ROUNDS = 2


def at_least_float32(outputs: Tensor) -> Tensor:
    """A network's outputs as its loss takes them: bf16 (autocast) raised to float32,
    float32 and float64 as they are, so that a float64 network is scored in float64."""
    return outputs.to(torch.promote_types(outputs.dtype, torch.float32))


def _free_memory_bytes(device: torch.device) -> int:
    """Free memory where the tensors live: CUDA's free memory, else available RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class NetworkEnergy:
    """Loss of ``model`` on (``inputs``, ``targets``) as a function of its flat parameters.

    ``energy(pivots (N, D), generator, batch_size) -> (losses (N,), grads (N, D))``:
    each pivot's mean loss on its own random minibatch of ``batch_size`` training
    samples (drawn without replacement; the whole set if it is not larger),
    BatchNorm on that minibatch's statistics, dropout off.

    ``strategy``: "batched" = every pivot's network written out as one batched
    network (``engine.energy.batched``: Linear as a batched matmul, Conv2d as a
    grouped convolution, BatchNorm and pooling with the pivot axis folded into
    the channels), for models made of layers with such a form
    (``batched_available``; ``batched_unsupported`` says why not);
    "vmap" = one forward over the pivot axis under torch.func.vmap
    (functional_call); both with one autograd backward (``chunk_size`` pivots at
    a time); "loop" = one pivot after the other. "auto" = a trial of every
    contender, a warm-up call each and then TIMED_ROUNDS timed calls each,
    interleaved, where a contender is an available strategy at a thread count
    (on the CPU: one thread and the cap, see below); the contender with the
    fastest timed call per pivot is kept (``strategy_used``, ``threads_used``;
    saved by ``state_dict``). All give the same numbers to float tolerance.

    ``threads`` (CPU only): the most intra-op threads this energy may use, the
    worker's share of the cores (default: torch's thread count when built).
    "auto" measures one thread against the cap (``thread_trial=False``: the cap
    alone, a count the user fixed); a fixed strategy runs at the cap. Calls run
    at ``threads_used`` and restore torch's count afterwards;
    ``Connection`` runs its whole step at the energy's ``threads_used``. How
    this shares the cores among several workers: ``engine.threads``.

    ``chunk_size=None`` picks the chunk from free memory (CUDA free memory, or
    available RAM on CPU): one pivot's cost is probed once per batch size as the
    bytes autograd saves for its backward pass, plus its batch and three vectors
    of size D; the chunk uses at most half the free memory counting each pivot
    at twice that cost. It is chosen on the first vmap call for each batch size.

    ``evaluate(points)`` and ``metrics(points, inputs, targets)`` are
    deterministic: eval mode, whole data sets in batches of ``eval_batch_size``,
    and for a network with BatchNorm its statistics first recomputed for each
    point on ``calibration_size`` training samples (a fixed random subset; all by
    default) as the exact average over those batches.

    The model is deep-copied to ``device`` (default: the inputs' device); the
    user's model is never changed.

    ``inputs`` and ``targets`` may instead be the ``inputs`` and ``targets`` of one
    ``engine.networks.stream.Streamed`` split (a Dataset larger than memory), and so
    may ``eval_inputs``, ``eval_targets`` and ``metrics``'s data: each step's rows are
    drawn as above and read from the Dataset, the next step's read ahead while the
    step computes (its rows foreseen on a copy of the generator, and used only if the
    step draws the same ones), and evaluation and BatchNorm recalibration read their
    batches in order (an evaluation each batch once, for all its points); the numbers
    are those of the same data in memory, bit for bit.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor,
        loss: Loss = "cross_entropy",
        *,
        batch_size: int = 128,
        strategy: str = "auto",
        chunk_size: int | None = None,
        eval_inputs: Tensor | None = None,
        eval_targets: Tensor | None = None,
        calibration_size: int | None = None,
        eval_batch_size: int = 1024,
        device: torch.device | str | None = None,
        prepare: Callable[[Tensor], Tensor] | None = None,
        augment: Callable[[Tensor, torch.Generator | None], Tensor] | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        threads: int | None = None,
        thread_trial: bool = True,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: use one of {STRATEGIES}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
        _check_data(inputs, targets, "inputs", "targets")
        if (eval_inputs is None) != (eval_targets is None):
            raise ValueError("give both eval_inputs and eval_targets, or neither")
        if eval_inputs is not None:
            _check_data(eval_inputs, eval_targets, "eval_inputs", "eval_targets")

        self.device = torch.device(device) if device is not None else inputs.device
        self.loss = loss
        self._loss_fn, self._error_count = loss_function(loss)
        # a (model, batch) loss runs the network itself: one pivot at a time, loaded into it
        self._model_loss = loss if takes_model(loss) else None
        if self._model_loss is not None and strategy in ("batched", "vmap"):
            raise ValueError(f"a (model, batch) loss runs under the loop strategy, not {strategy!r}: use 'loop' or "
                             "'auto' (which chooses the loop)")
        self.batch_size = batch_size
        self.strategy = strategy
        self.chunk_size = chunk_size
        self.eval_batch_size = eval_batch_size
        # Raw stored samples (e.g. uint8 images) -> model inputs, everywhere; and a
        # random augmentation of training batches during steps only (drawn from the
        # step's generator, so a resumed run replays it).
        self.prepare = prepare or (lambda x: x)
        self.augment = augment
        # Speed options for GPUs (all off by default; all also run on the CPU):
        # bf16 autocast of the forward passes, channels-last image batches, and
        # torch.compile of the per-pivot loss (the loop strategy's unit of work).
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = compile

        # Evaluation copy: keeps BatchNorm buffers, recalibrated per point.
        self._eval_model = copy.deepcopy(model).to(self.device).eval()
        self._eval_model.requires_grad_(False)
        # Step copy: BatchNorm without running statistics normalises by the batch
        # even in eval mode (which keeps dropout off); its parameters are unused,
        # functional_call supplies each pivot's.
        self._step_model = copy.deepcopy(self._eval_model)
        replace_all_batch_norm_modules_(self._step_model)
        self._batchnorms = [m for m in self._eval_model.modules() if isinstance(m, _BatchNorm)]

        self.layout = ParameterLayout.from_module(self._eval_model)
        self.dim = self.layout.dim
        self.dtype = next(self._eval_model.parameters()).dtype

        _check_same_split(inputs, targets, "inputs", "targets")
        self.inputs = inputs.to(self.device)  # (n, ...), or a streamed split's Column
        self.targets = targets.to(self.device)  # (n,)
        self.eval_inputs = self.inputs if eval_inputs is None else eval_inputs.to(self.device)
        self.eval_targets = self.targets if eval_targets is None else eval_targets.to(self.device)
        # the training set's Streamed split when it is read on demand, else None
        self.streamed = self.inputs.streamed if isinstance(self.inputs, Column) else None
        self._pending: Any = None  # the next step's rows, being read ahead (streamed only)
        n = self.inputs.shape[0]
        if calibration_size is not None and not 1 <= calibration_size:
            raise ValueError(f"calibration_size must be positive or None, got {calibration_size}")
        self._calibration_rows: Tensor | None = None  # streamed: the calibration rows, in order
        if calibration_size is None or calibration_size >= n:
            self._calibration = self.inputs
            self._calibration_rows = torch.arange(n) if self.streamed is not None else None
        else:
            subset = torch.randperm(n, generator=torch.Generator().manual_seed(0))
            if self.streamed is not None:
                self._calibration, self._calibration_rows = self.inputs, subset[:calibration_size]
            else:
                self._calibration = self.inputs[subset[:calibration_size].to(self.device)]
        self._calibration_count = n if calibration_size is None else min(calibration_size, n)

        # (thetas (c, D), x (c, B, ...), y (c, B)) -> losses (c,): one batched forward.
        self._pivots_loss = vmap(self._pivot_loss)
        self._chunks: dict[int, int] = {}  # batch size -> pivots per batched call
        flat_inputs = self._model_loss is None and self.prepare(self.inputs[:1]).dim() == 2
        try:
            if self._model_loss is not None:
                raise BatchedUnsupported("a (model, batch) loss runs the model itself")
            self._direct: BatchedNetwork | None = BatchedNetwork(
                self._step_model, self.layout.names, self.layout.shapes, flat_inputs
            )
            self.batched_unsupported: str | None = None
        except BatchedUnsupported as e:
            self._direct, self.batched_unsupported = None, str(e)
        if strategy == "batched" and self._direct is None:
            raise ValueError(
                f"strategy 'batched' does not cover this model ({self.batched_unsupported}): "
                "use 'auto', 'vmap' or 'loop'"
            )
        self._direct_losses = pivot_losses(loss)
        # The batched network's own backward (no autograd graph) where it has one written out.
        self._written_out = (
            self._direct is not None and self._direct.gradient_written_out
            and loss == "cross_entropy" and precision == "fp32" and self.targets.dim() == 1
        )

        if compile:
            self._looped_loss = torch.compile(self._module_loss, dynamic=False)
        else:
            self._looped_loss = self._module_loss
        self._loop_network: tuple[nn.Module, list[nn.Parameter]] | None = None  # built on the loop's first call

        cap = threads if threads is not None else torch.get_num_threads()
        self.threads = cap if self.device.type == "cpu" else None
        self.thread_trial = thread_trial
        self.strategy_used: str | None = None if strategy == "auto" else strategy
        self.threads_used: int | None = None if strategy == "auto" else self.threads
        self.contenders = self._trial_contenders()
        self._trial_calls = 0
        self._seconds_per_pivot: dict[str, float] = {}
        # what it has computed, in per-sample passes (engine.energy.base.Work)
        self.work = Work("samples")

    @property
    def batched_available(self) -> bool:
        return self._direct is not None

    def _trial_contenders(self) -> tuple[tuple[str, int | None], ...]:
        """(strategy, threads) pairs the auto strategy measures (empty when fixed)."""
        if self.strategy != "auto":
            return ()
        strategies = (("batched",) if self._direct is not None else ()) + ("vmap", "loop")
        if self._model_loss is not None:
            strategies = ("loop",)
        counts = (1, self.threads) if self.thread_trial and self.threads is not None and self.threads > 1 \
            else (self.threads,)
        return tuple((s, t) for t in counts for s in strategies)

    @property
    def trial_length(self) -> int:
        """Calls before "auto" has chosen (0 for a fixed strategy)."""
        return len(self.contenders) * (1 + TIMED_ROUNDS)

    # ----- the energy during NEB steps -------------------------------------------

    def _step_inputs(self, index: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Every pivot's minibatch: model inputs (N, B, ...), augmented if asked, and
        targets (N, B, ...). A streamed split starts reading the next step's rows here."""
        n_pivots, batch = index.shape
        if self.streamed is None:
            x = self.inputs.index_select(0, index.reshape(-1))  # (N B, ...) raw samples
            y = self.targets.index_select(0, index.reshape(-1))  # (N B, ...)
        else:
            x, y = self._read_rows(index.reshape(-1))
        if self.augment is not None:
            x = self.augment(x, generator)
        if self.streamed is not None and generator is not None:
            self._read_ahead(n_pivots, batch, generator)
        x = self.prepare(x)
        return x.view(n_pivots, batch, *x.shape[1:]), y.view(n_pivots, batch, *y.shape[1:])

    def _read_rows(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The streamed rows ``rows`` (R,) on the device: the read begun ahead if it foresaw
        them, else read now."""
        assert self.streamed is not None
        pending, self._pending = self._pending, None
        rows = rows.cpu()
        if pending is not None and pending.index.shape == rows.shape and torch.equal(pending.index, rows):
            x, y = pending.result()
        else:
            if pending is not None:
                with contextlib.suppress(Exception):  # a read nobody takes: its failure is not this step's
                    pending.result()
            x, y = self.streamed.fetch(rows)
        return x.to(self.device), y.to(self.device)

    def _read_ahead(self, n_pivots: int, batch_size: int, generator: torch.Generator) -> None:
        """Begin reading the rows the next step would draw, were it the same size and the
        generator used for nothing else in between: drawn on a copy of the generator,
        which stays as it is."""
        assert self.streamed is not None
        ahead = torch.Generator(device=generator.device)
        ahead.set_state(generator.get_state())
        self._pending = self.streamed.prefetch(self.batch_indices(n_pivots, batch_size, ahead).reshape(-1))

    def _autocast(self) -> Any:
        """bf16 autocast of a forward pass when asked for, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _layout_batch(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _pivot_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        with self._autocast():
            outputs = functional_call(self._step_model, self.layout.unflatten(theta), (x,))
        return self._loss_fn(at_least_float32(outputs), y)

    def _module_loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The loss of ``model`` (the loop's network, a pivot loaded into it) on one batch."""
        if self._model_loss is not None:  # the user's loss runs the model on the batch itself
            with self._autocast():
                return at_least_float32(self._model_loss(model, model_batch(x, y)))
        with self._autocast():
            outputs = model(x)
        return self._loss_fn(at_least_float32(outputs), y)

    def batch_indices(
        self, n_pivots: int, batch_size: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Each pivot's minibatch: (N, B) sample indices, distinct within a row.

        One permutation of the n samples serves n // B pivots in turn (its first B
        entries, the next B, ...), so a step draws ceil(N / (n // B)) permutations
        instead of one per pivot (16 x 128 of 1,348 digits: 2 instead of 16, the
        random numbers being most of a small network's draws). Each row is still a
        uniformly random B-subset in random order, so each pivot's gradient is the
        same unbiased estimate; pivots sharing a permutation see disjoint batches
        instead of independent ones. Where n < 2 B a permutation serves one pivot
        and the stream is the one-permutation-per-pivot stream of earlier versions.
        Drawn where the generator is: on the CPU with ``randperm``; on a device as
        random keys (P, n) sorted per row, with no copy from the host."""
        n = self.inputs.shape[0]
        if batch_size >= n:
            return torch.arange(n, device=self.device).expand(n_pivots, n)
        if n_pivots == 0:
            return torch.empty(0, batch_size, dtype=torch.long, device=self.device)
        where = generator.device if generator is not None else torch.device("cpu")
        per_draw = n // batch_size  # pivots served by one permutation
        draws = -(-n_pivots // per_draw)
        if where.type != "cpu":
            keys = torch.rand(draws, n, generator=generator, device=where)  # (P, n)
            perms = keys.argsort(dim=1)[:, : per_draw * batch_size]  # (P, per_draw B)
        elif draws == 1:
            perms = torch.randperm(n, generator=generator)
        else:
            perms = torch.stack([
                torch.randperm(n, generator=generator)[: per_draw * batch_size] for _ in range(draws)
            ])
        index = perms.reshape(-1)[: n_pivots * batch_size].view(n_pivots, batch_size)
        return index.to(self.device)  # (N, B)

    def __call__(
        self,
        pivots: Tensor,  # (N, D)
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        return self._step(pivots, generator, batch_size, fixed_ends=False)

    def interior_gradients(
        self,
        pivots: Tensor,  # (N, D), N >= 2
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """A band's step: losses (N,) of every pivot, gradients (N-2, D) of the interior.

        The same minibatches are drawn as by ``energy(pivots)``, and the numbers are
        the same bit for bit, but the two ends (fixed: their gradient is never used)
        are evaluated forward only, in a call of their own, while the interior keeps
        its batched pass: the backward passes spent are N-2 minibatches, not N. Where
        that would change the interior's bits (``ends_apart`` says where it does not),
        every pivot stays in the pass and the ends' gradients are dropped (``work``
        counts N backward minibatches then)."""
        if pivots.dim() == 2 and pivots.shape[0] < 2:
            raise ValueError(f"a band has two ends: expected at least 2 pivots, got {pivots.shape[0]}")
        return self._step(pivots, generator, batch_size, fixed_ends=True)

    def _step(
        self, pivots: Tensor, generator: torch.Generator | None, batch_size: int | None, fixed_ends: bool
    ) -> tuple[Tensor, Tensor]:
        self._check_points(pivots, "pivots")
        batch_size = self.batch_size if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        n_pivots = pivots.shape[0]
        index = self.batch_indices(n_pivots, batch_size, generator)  # (N, B)
        thetas = pivots.detach().to(self.device, self.dtype)  # (N, D)
        if n_pivots == 0:
            return pivots.new_zeros(0), pivots.new_zeros(0, self.dim)

        inputs, targets = self._step_inputs(index, generator)  # (N, B, ...), (N, B, ...)
        if self.strategy_used is not None:
            strategy, threads = self.strategy_used, self.threads_used
        else:
            strategy, threads = self.contenders[self._trial_calls % len(self.contenders)]
        with intra_op_threads(threads):
            start = time.perf_counter()
            ends_apart = fixed_ends and self.ends_apart(strategy)
            differentiated = slice(1, n_pivots - 1) if ends_apart else slice(0, n_pivots)
            losses, grads = self._gradients(strategy, thetas[differentiated], inputs[differentiated],
                                            targets[differentiated])
            if ends_apart:  # the ends' losses, forward only
                ends = slice(0, n_pivots, n_pivots - 1)  # rows 0 and N-1, views
                interior, losses = losses, thetas.new_empty(n_pivots)  # (N,)
                losses[ends] = self._forward_only(strategy, thetas[ends], inputs[ends], targets[ends])
                losses[1:-1] = interior
            elif fixed_ends:
                grads = grads[1:-1]
            if self.strategy_used is None:
                self._trial_done(strategy, threads, (time.perf_counter() - start) / n_pivots)
        samples = index.shape[1]
        self.work.step_forward += n_pivots * samples
        self.work.step_backward += (n_pivots - 2 if ends_apart else n_pivots) * samples
        return losses.to(pivots.device, pivots.dtype), grads.to(pivots.device, pivots.dtype)

    def ends_apart(self, strategy: str) -> bool:
        """Whether ``interior_gradients`` under ``strategy`` evaluates a band's ends in a
        forward-only call of their own: under the loop (one pivot at a time, so the
        interior's numbers are the same bit for bit on any device). The batched and vmap
        strategies keep every pivot in their pass: there a pivot's numbers depend on how
        many pivots share its call (vmap; a grouped convolution's weight gradient;
        matmuls on a GPU, whose kernels are chosen by the batch's shape), and where they
        do not (the batched network of a model without convolutions, on the CPU) a call of
        its own for the ends measured slower than their backward in the pass (digits MLP,
        8 pivots x 128: 1.80 against 1.65 ms a step)."""
        return strategy == "loop"

    def _gradients(self, strategy: str, thetas: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Losses (c,) and gradients (c, D) of pivots (c, D) on their batches, by ``strategy``."""
        if thetas.shape[0] == 0:
            return thetas.new_zeros(0), thetas.new_zeros(0, self.dim)
        if strategy == "loop":
            return self._looped(thetas, inputs, targets)
        return self._batched(thetas, inputs, targets, direct=strategy == "batched")

    def _forward_only(self, strategy: str, thetas: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        """Losses (c,) of pivots (c, D) on their batches, no gradient: the forward pass
        ``_gradients`` makes by the same strategy, so the same numbers."""
        with torch.no_grad():
            if strategy == "loop":
                model, _params = self._loop_parts()
                losses = thetas.new_empty(thetas.shape[0])  # (c,)
                for i in range(thetas.shape[0]):
                    self.layout.load_into(model, thetas[i])
                    losses[i] = self._looped_loss(model, self._layout_batch(inputs[i]), targets[i])
                return losses
            chunk = self.chunk_size or self._auto_chunk_size(inputs.shape[1])
            parts = []
            for s in range(0, thetas.shape[0], chunk):
                theta, x, y = thetas[s : s + chunk], inputs[s : s + chunk], targets[s : s + chunk]
                if strategy == "batched" and self._written_out:
                    parts.append(self._direct_forward(theta, x, y)[0])
                elif strategy == "batched":
                    parts.append(self._direct_loss(theta, x, y))
                else:
                    parts.append(self._pivots_loss(theta, x, y))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _looped(self, thetas: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """One pivot after the other: each is copied into the loop's own network, whose
        parameters take its gradient by a plain backward pass, then gathered into the
        pivot's row. The same bits as ``autograd.grad`` through ``functional_call`` of a
        view of the pivot, and measured 13 to 16 % faster for ResNet-20 at batch 512 on
        the CPU (the training step's own backward is the same path)."""
        model, params = self._loop_parts()
        losses = thetas.new_empty(thetas.shape[0])  # (N,)
        grads = torch.empty_like(thetas)  # (N, D)
        with torch.enable_grad():
            for i in range(thetas.shape[0]):
                self.layout.load_into(model, thetas[i])
                for p in params:
                    p.grad = None
                loss = self._looped_loss(model, self._layout_batch(inputs[i]), targets[i])
                loss.backward()
                torch.cat([p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params],
                          out=grads[i])
                losses[i] = loss.detach()
        for p in params:
            p.grad = None
        return losses, grads

    def _loop_parts(self) -> tuple[nn.Module, list[nn.Parameter]]:
        """The loop's network (the step network's copy, with parameters that take
        gradients) and its parameters in the layout's order."""
        if self._loop_network is None:
            model = copy.deepcopy(self._step_model).requires_grad_(True)
            self._loop_network = (model, list(self.layout._check_module(model).values()))
        return self._loop_network

    def _direct_loss(self, thetas: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The batched network's losses (c,) of pivots (c, D) on their batches (c, B, ...)."""
        assert self._direct is not None
        memory_format = torch.channels_last if self.channels_last else None
        with self._autocast():
            outputs = self._direct(thetas, x, memory_format)  # (c, B, ...)
        return self._direct_losses(at_least_float32(outputs), y)

    def _direct_forward(self, thetas: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, tuple]:
        """The losses (c,) of the batched network with its backward written out, and what that backward needs."""
        assert self._direct is not None
        return self._direct.cross_entropy_forward(thetas, x, y)

    def _batched(
        self, thetas: Tensor, inputs: Tensor, targets: Tensor, direct: bool = False
    ) -> tuple[Tensor, Tensor]:
        """All pivots in one forward (the batched network, or vmap over the pivot
        axis), then one ordinary backward pass: the rows are independent, so the
        gradient of the summed losses is each pivot's own gradient (measured
        faster than vmap of torch.func.grad)."""
        chunk = self.chunk_size or self._auto_chunk_size(inputs.shape[1])
        forward = self._direct_loss if direct else self._pivots_loss
        parts = []
        if direct and self._written_out:  # the same numbers as autograd's, bit for bit
            assert self._direct is not None
            for s in range(0, thetas.shape[0], chunk):
                losses, saved = self._direct_forward(thetas[s : s + chunk], inputs[s : s + chunk], targets[s : s + chunk])
                parts.append((losses, self._direct.cross_entropy_backward(saved)))
        else:
            with torch.enable_grad():
                for s in range(0, thetas.shape[0], chunk):
                    theta = thetas[s : s + chunk].detach().requires_grad_(True)  # (c, D)
                    losses = forward(theta, inputs[s : s + chunk], targets[s : s + chunk])  # (c,)
                    (grads,) = torch.autograd.grad(losses.sum(), theta)  # (c, D)
                    parts.append((losses.detach(), grads))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _trial_done(self, strategy: str, threads: int | None, seconds_per_pivot: float) -> None:
        self._sync()
        if self._trial_calls >= len(self.contenders):  # past the warm-up round
            key = _contender_key(strategy, threads)
            best = self._seconds_per_pivot.get(key, seconds_per_pivot)
            self._seconds_per_pivot[key] = min(best, seconds_per_pivot)
        self._trial_calls += 1
        if self._trial_calls == self.trial_length:
            self.strategy_used, self.threads_used = min(
                self.contenders, key=lambda c: self._seconds_per_pivot[_contender_key(*c)]
            )

    def _auto_chunk_size(self, batch_size: int) -> int:
        """Pivots per vmap call, chosen once per batch size (cached: reading the
        free memory on every call costs more than a small network's step)."""
        if batch_size not in self._chunks:
            budget = _free_memory_bytes(self.device) // 2
            self._chunks[batch_size] = max(1, budget // (2 * self._probe_pivot_bytes(batch_size)))
        return self._chunks[batch_size]

    def _probe_pivot_bytes(self, batch_size: int) -> int:
        """Bytes one pivot needs: what autograd saves for backward on one batch,
        the batch itself and three vectors of size D."""
        saved = 0

        def pack(t: Tensor) -> Tensor:
            nonlocal saved
            saved += t.numel() * t.element_size()
            return t

        take = min(batch_size, self.inputs.shape[0])
        x, y = self.prepare(self.inputs[:take]), self.targets[:take]
        theta = self.layout.flatten(self._eval_model).requires_grad_(True)
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            self._pivot_loss(theta, x, y)
        batch = x.numel() * x.element_size() + y.numel() * y.element_size()
        return max(1, saved + batch + 3 * theta.numel() * theta.element_size())

    def state_dict(self) -> dict:
        """The strategy and thread choice (and the auto trial so far), for
        bit-identical resumption."""
        return {
            "strategy": self.strategy_used,
            "threads": self.threads_used,
            "contenders": [_contender_key(*c) for c in self.contenders],
            "trial_calls": self._trial_calls,
            "seconds_per_pivot": dict(self._seconds_per_pivot),
        }

    def load_state_dict(self, state: dict) -> None:
        used = state.get("strategy")
        if used not in (None, "batched", "vmap", "loop"):
            raise ValueError(
                f"unknown strategy {used!r} in the state: expected 'batched', 'vmap', 'loop' or None"
            )
        if self.strategy != "auto" and used != self.strategy:
            raise ValueError(
                f"the state was saved with strategy {used!r} but this energy uses "
                f"{self.strategy!r}: build it with strategy='auto' to resume"
            )
        if used == "batched" and self._direct is None:
            raise ValueError(
                f"the state was saved with strategy 'batched', which does not cover this model "
                f"({self.batched_unsupported})"
            )
        self.strategy_used = used
        if used is not None:
            # A state from before the thread choice ran at the cap.
            threads = state.get("threads", self.threads)
            self.threads_used = None if threads is None or self.threads is None else min(int(threads), self.threads)
            self._trial_calls = self.trial_length
            self._seconds_per_pivot = dict(state.get("seconds_per_pivot", {}))
        elif state.get("contenders") == [_contender_key(*c) for c in self.contenders]:
            self.threads_used = None
            self._trial_calls = int(state.get("trial_calls", 0))
            self._seconds_per_pivot = dict(state.get("seconds_per_pivot", {}))
        else:  # a trial over other contenders (another cap, an older version): start it again
            self.threads_used = None
            self._trial_calls = 0
            self._seconds_per_pivot = {}

    # ----- deterministic evaluation -----------------------------------------------

    def evaluate(self, points: Tensor) -> Tensor:
        """Mean loss (M,) of each point (M, D) on the evaluation set."""
        losses, _errors = self.metrics(points, self.eval_inputs, self.eval_targets)
        return losses

    def metrics(self, points: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mean loss (M,) and error (M,) (fraction misclassified; NaN for
        regression losses) of each point (M, D) on (inputs, targets)."""
        self._check_points(points, "points")
        _check_data(inputs, targets, "inputs", "targets")
        _check_same_split(inputs, targets, "inputs", "targets")
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        n = inputs.shape[0]
        losses = torch.empty(points.shape[0], dtype=torch.float64)  # (M,)
        errors = torch.full((points.shape[0],), float("nan"), dtype=torch.float64)  # (M,)
        thetas = points.detach().to(self.device, self.dtype)  # (M, D)
        loss_sums = [torch.zeros((), dtype=torch.float64, device=self.device) for _ in thetas]
        error_sums = [torch.zeros((), dtype=torch.float64, device=self.device) for _ in thetas]
        rows = torch.arange(n).split(self.eval_batch_size)
        if isinstance(inputs, Column):
            # streamed: each batch read once and evaluated at every point, whose BatchNorm
            # statistics are recalibrated first and put back before each of its batches
            states = []
            for theta in thetas:
                self.layout.load_into(self._eval_model, theta)
                if self._batchnorms:
                    self._recalibrate()
                states.append([buffer.clone() for buffer in self._eval_model.buffers()])
            with torch.no_grad():
                for x, y in self._in_order(inputs, targets, rows):
                    for j, theta in enumerate(thetas):
                        self.layout.load_into(self._eval_model, theta)
                        for buffer, saved in zip(self._eval_model.buffers(), states[j]):
                            buffer.copy_(saved)
                        self._add_batch(x, y, loss_sums[j], error_sums[j])
        else:
            for j, theta in enumerate(thetas):
                self.layout.load_into(self._eval_model, theta)
                if self._batchnorms:
                    self._recalibrate()
                with torch.no_grad():
                    for x, y in self._in_order(inputs, targets, rows):
                        self._add_batch(x, y, loss_sums[j], error_sums[j])
        self.work.evaluation_forward += n * thetas.shape[0]
        for j in range(thetas.shape[0]):
            losses[j] = loss_sums[j].item() / n
            if self._error_count is not None:
                errors[j] = error_sums[j].item() / n
        return (
            losses.to(points.device, points.dtype),
            errors.to(points.device, points.dtype),
        )

    def _add_batch(self, x: Any, y: Tensor, loss_sum: Tensor, error_sum: Tensor) -> None:
        """Add the evaluation network's summed loss on one batch to ``loss_sum`` and its
        misclassified count to ``error_sum`` (both 0-d float64, in place)."""
        if self._model_loss is not None:
            loss_sum += self._module_loss(self._eval_model, self.prepare(x), y).double() * x.shape[0]
            return
        with self._autocast():
            outputs = at_least_float32(self._eval_model(self._layout_batch(self.prepare(x))))
        loss_sum += self._loss_fn(outputs, y).double() * x.shape[0]
        if self._error_count is not None:
            error_sum += self._error_count(outputs, y)

    def network_state(self, point: Tensor) -> dict[str, Tensor]:
        """The network at ``point`` (D,) as a state dict on the CPU, what the model's
        ``load_state_dict`` takes: its parameters, and BatchNorm statistics recomputed
        for this point on the calibration data (as every evaluation does)."""
        self._check_points(point.unsqueeze(0), "point")
        self.layout.load_into(self._eval_model, point.detach().to(self.device, self.dtype))
        if self._batchnorms:
            self._recalibrate()
        return {name: value.detach().cpu().clone() for name, value in self._eval_model.state_dict().items()}

    def _recalibrate(self) -> None:
        """BatchNorm statistics of the current parameters: the exact average of
        the batch statistics over the calibration data (momentum None)."""
        start = time.perf_counter()
        momenta = [bn.momentum for bn in self._batchnorms]
        for bn in self._batchnorms:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        try:
            # Near-equal batches (never a batch of one sample, which BatchNorm rejects).
            n_batches = -(-self._calibration_count // self.eval_batch_size)
            if self._calibration_rows is not None:  # streamed: read in order, the same batches
                batches: Any = (x for x, _ in self._in_order(self._calibration, self.targets,
                                                              self._calibration_rows.tensor_split(n_batches)))
            else:
                batches = self._calibration.tensor_split(n_batches)
            with torch.no_grad():
                for batch in batches:
                    with self._autocast():
                        if isinstance(batch, dict):  # samples a (model, batch) loss runs the model on
                            self._model_loss(self._eval_model, dict(self.prepare(batch)))  # type: ignore[misc]
                        else:
                            self._eval_model(self._layout_batch(self.prepare(batch)))  # training data, not augmented
        finally:
            for bn, momentum in zip(self._batchnorms, momenta):
                bn.momentum = momentum
                bn.eval()
        self._sync()
        self.work.recalibration_forward += self._calibration_count
        self.work.recalibration_seconds += time.perf_counter() - start

    def _check_points(self, points: Tensor, what: str) -> None:
        if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != self.dim:
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(
                f"expected {what} of shape (N, {self.dim}) (one flat parameter vector "
                f"per row), got {shape}"
            )

    def _in_order(self, inputs: Any, targets: Any, parts: Any) -> Any:
        """(inputs, targets) of each run of rows in ``parts`` (tensors of row indices), on
        the device: slices of tensors in memory, or reads of a streamed split (its loader
        reading ahead). Runs of consecutive rows only for tensors in memory."""
        if not isinstance(inputs, Column):
            for rows in parts:
                start, stop = int(rows[0]), int(rows[-1]) + 1
                yield inputs[start:stop], targets[start:stop]
            return
        for x, y in inputs.streamed.batches(parts, together=True):
            yield x.to(self.device), y.to(self.device)


def _check_same_split(inputs: Any, targets: Any, inputs_name: str, targets_name: str) -> None:
    """Streamed inputs go with the targets of the same split, tensors with tensors."""
    if isinstance(inputs, Column) or isinstance(targets, Column):
        if not (isinstance(inputs, Column) and isinstance(targets, Column) and inputs.streamed is targets.streamed
                and inputs.part == 0 and targets.part == 1):
            raise ValueError(f"{inputs_name} and {targets_name} must be the inputs and targets of one streamed split, "
                             "or two tensors")


def model_batch(x: Any, y: Tensor) -> Any:
    """A batch as a ``(model, batch)`` loss takes it: the dict of tensors of dict items
    (engine.networks.datasets.Rows), else the pair (inputs, targets)."""
    return dict(x) if isinstance(x, dict) else (x, y)


def _contender_key(strategy: str, threads: int | None) -> str:
    """"batched@1", "loop@2", "vmap" (no thread count off the CPU): a JSON-safe key."""
    return strategy if threads is None else f"{strategy}@{threads}"


def _check_data(inputs: Tensor, targets: Tensor, inputs_name: str, targets_name: str) -> None:
    if inputs.dim() < 1 or targets.dim() < 1 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"{inputs_name} {tuple(inputs.shape)} and {targets_name} {tuple(targets.shape)} "
            "must have the same number of rows (one target per sample)"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{inputs_name} is empty: give at least one sample")
