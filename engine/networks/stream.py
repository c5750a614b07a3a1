"""A map-style Dataset too large for memory, read batch by batch as the energy asks.

Whether a user's Dataset is read whole into memory (``datasets.materialise``) or
streamed is decided by ``choose``: "auto" streams it when its estimated size (the
bytes of its first item, collated, times its length) is more than STREAM_FRACTION
of the memory available where its tensors would live; "memory" and "stream" force
either. A streamed split is a ``Streamed``: the Dataset and its collate, whose
``inputs`` and ``targets`` are ``Column``s, stand-ins for the two tensors that the
energy takes in their place (their rows are read, never held).

What is ours is only where the indices come from: each step's rows are still drawn
from the session's generator (``NetworkEnergy.batch_indices``), and the same rows
read from the Dataset are the same bits as those rows of the materialised tensors,
so a streamed run gives the numbers of the in-memory run and resumes bit for bit.
The items are fetched by a ``torch.utils.data.DataLoader`` fed those indices
through a batch sampler of ours, with worker processes (a session's CPU workers may
have them; a daemonic process may not, and there a thread reads them), and
``prefetch`` reads the next step's rows while the current step computes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor

MODES = ("auto", "memory", "stream")
# "auto" streams a Dataset whose estimated size exceeds this share of the available memory:
# the rest is left to the network, its batches and the other processes of the machine.
STREAM_FRACTION = 0.25
LOADER_WORKERS = 2  # DataLoader worker processes of a streamed split (where the process may have children)
# A pass over a split in small batches reads them this many bytes or more at a time (``batches``);
# reads of 4 or 8 MB left each loader worker's heap growing (1.2 GB resident after six passes
# over 1 GB, where reads of 2 MB kept it at 0.4 GB, as torch alone takes).
READ_BYTES = 2 * 2**20


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory where the tensors would live: CUDA's free memory, else the RAM the
    kernel calls available (MemAvailable), capped by what this process's address-space
    limit (``ulimit -v``) leaves of it."""
    import resource

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    mapped = 0  # bytes of address space this process uses (VmSize)
    for path, key in (("/proc/meminfo", "MemAvailable:"), ("/proc/self/status", "VmSize:")):
        try:
            with open(path) as f:
                found = [int(line.split()[1]) * 1024 for line in f if line.startswith(key)]
        except OSError:
            found = []
        if found and key == "MemAvailable:":
            available = found[0]
        elif found:
            mapped = found[0]
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return int(available) if soft == resource.RLIM_INFINITY else int(max(0, min(available, soft - mapped)))


def estimated_bytes(dataset: Any, collate: Callable[[list[Any]], Any] | None = None) -> int:
    """The bytes the whole Dataset takes as tensors: its first item, collated, times its length."""
    batch = _collate(collate)([dataset[0]])
    parts = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else [batch]
    tensors = [torch.as_tensor(t) for t in parts]
    return len(dataset) * sum(t.numel() * t.element_size() for t in tensors)


def _dict_items(dataset: Any, collate: Callable[[list[Any]], Any] | None) -> bool:
    return isinstance(_collate(collate)([dataset[0]]), dict)


def choose(mode: str, dataset: Any, collate: Callable[[list[Any]], Any] | None = None,
           device: torch.device | str = "cpu", budget: int | None = None) -> bool:
    """Whether to stream a map-style Dataset: ``mode`` "stream" or "memory" as it says; "auto"
    when ``estimated_bytes`` exceeds STREAM_FRACTION of ``budget`` (default: ``available_bytes``),
    unless its items are dicts of tensors, which are always read into memory."""
    if mode not in MODES:
        raise ValueError(f"unknown data placement {mode!r}: use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode == "stream"
    if _dict_items(dataset, collate):  # dicts of tensors (a (model, batch) loss's) are read into memory
        return False
    budget = available_bytes(device) if budget is None else budget
    return estimated_bytes(dataset, collate) > STREAM_FRACTION * budget


def collated_pair(batch: Any) -> tuple[Tensor, Tensor]:
    """A collated batch as (inputs, targets) tensors, class labels as int64: what
    ``datasets.user_tensors`` makes of the same items read whole."""
    if isinstance(batch, dict):
        raise TypeError("its items are dicts of tensors, which are read into memory, not streamed: leave the "
                        "data in memory (--data-in memory or auto)")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"its collate gave a {type(batch).__name__}, not a pair (inputs, targets)")
    x, y = (torch.as_tensor(t) for t in batch)
    return x, (y if y.is_floating_point() else y.long())


def _collate(collate: Callable[[list[Any]], Any] | None) -> Callable[[list[Any]], Any]:
    from torch.utils.data import default_collate

    return collate or default_collate


class _Plan:
    """The DataLoader's batch sampler: the index lists of the read under way, set before
    each read (a DataLoader's sampler cannot be replaced once it is built)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Read:
    """Rows being read in the background: ``result()`` waits for them."""

    def __init__(self, streamed: "Streamed", index: Tensor):
        self.index = index  # (R,) the rows, in order
        self._out: tuple[Tensor, Tensor] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(streamed,), name="prefetch", daemon=True)
        self._thread.start()

    def _run(self, streamed: "Streamed") -> None:
        try:
            self._out = streamed.fetch(self.index)
        except BaseException as error:  # noqa: BLE001 - handed to the caller of result()
            self._out = error

    def result(self) -> tuple[Tensor, Tensor]:
        self._thread.join()
        if isinstance(self._out, BaseException):
            raise self._out
        assert self._out is not None
        return self._out


class Streamed:
    """One split of a map-style Dataset, read on demand: ``fetch(index)`` gives the rows
    ``index`` as (inputs, targets) tensors on the CPU, ``batches(indices)`` a series of
    such reads in order (worker processes reading ahead), ``prefetch(index)`` starts a
    read in the background whose ``result()`` a later step takes. ``inputs`` and
    ``targets`` stand in for the materialised tensors."""

    def __init__(self, dataset: Any, collate: Callable[[list[Any]], Any] | None = None, *,
                 workers: int = LOADER_WORKERS):
        self.dataset = dataset
        self.collate = _collate(collate)
        self.length = len(dataset)
        if self.length == 0:
            raise ValueError("it holds no samples")
        first_x, first_y = self._read_here([0])
        self.workers = workers
        self._plan = _Plan()
        self._lock = threading.Lock()  # one read of the loader at a time
        self._hold_loader()
        self._rows = ((first_x.shape[1:], first_x.dtype), (first_y.shape[1:], first_y.dtype))  # each part's row

    # Columns made when asked, not kept: a reference cycle would leave the loader to the garbage
    # collector, whose clearing of the cycle stops its worker processes from being told to exit.
    @property
    def inputs(self) -> "Column":
        return Column(self, 0, *self._rows[0])

    @property
    def targets(self) -> "Column":
        return Column(self, 1, *self._rows[1])

    def __len__(self) -> int:
        return self.length

    def _hold_loader(self) -> None:
        """The loader (built on the first read, in the process that reads) is held beside this
        split, not in it, and let go when the split is: by reference count, so that its workers
        are told to stop while its queues still work (the garbage collector, clearing a cycle the
        split is part of, may close those queues first, and each worker then takes seconds to go)."""
        self._loader: list[Any] = []
        weakref.finalize(self, self._loader.clear)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_loader"], state["_lock"]  # a copy in another process builds its own
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._hold_loader()

    def _read_here(self, rows: list[int]) -> tuple[Tensor, Tensor]:
        return collated_pair(self.collate([self.dataset[i] for i in rows]))

    def _loader_for_reads(self) -> Any:
        from torch.utils.data import DataLoader

        if not self._loader:
            # a daemonic process (a session's CPU worker) may not start processes: it reads in its own thread
            workers = 0 if multiprocessing.current_process().daemon else self.workers
            self._loader.append(DataLoader(self.dataset, batch_sampler=self._plan, collate_fn=self.collate,
                                           num_workers=workers, persistent_workers=workers > 0))
        return self._loader[0]

    def batches(self, indices: Iterable[Any], *, together: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, targets) of each list of rows in ``indices``, in order, read by the
        loader's workers ahead of the caller. ``together``: consecutive lists are read
        as one, READ_BYTES or more, and split again, for a pass over the split in small
        batches (each read costs a round trip to a worker, a millisecond or more whatever
        its size: a pass over 1 GB in 2,000 reads took 4 s, in 500 reads 1.5 s)."""
        plan = [rows.tolist() if isinstance(rows, Tensor) else [int(i) for i in rows] for rows in indices]
        sizes = [[len(rows)] for rows in plan]  # the lists each read holds, by length
        if together:
            at_least = max(1, READ_BYTES // sum(shape.numel() * dtype.itemsize for shape, dtype in self._rows))
            reads: list[list[int]] = []
            sizes = []
            for rows in plan:
                if not reads or len(reads[-1]) >= at_least:
                    reads.append([])
                    sizes.append([])
                reads[-1].extend(rows)
                sizes[-1].append(len(rows))
            plan = reads
        with self._lock:
            loader = self._loader_for_reads()
            self._plan.batches = plan
            for batch, lengths in zip(loader, sizes):
                x, y = collated_pair(batch)
                yield from zip(x.split(lengths), y.split(lengths)) if len(lengths) > 1 else [(x, y)]

    def fetch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """The rows ``index`` (R,), in order: (inputs (R, ...), targets (R,)), split among the workers."""
        rows = index.reshape(-1).tolist()
        pieces = max(1, min(self.workers, len(rows)))
        size = -(-len(rows) // pieces)
        parts = list(self.batches(rows[s : s + size] for s in range(0, len(rows), size)))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def prefetch(self, index: Tensor) -> _Read:
        """Start reading the rows ``index`` in the background."""
        return _Read(self, index.detach().cpu())


class Column:
    """The inputs (``part`` 0) or targets (``part`` 1) of a ``Streamed`` split, standing in
    for a tensor of all its rows: its shape, a slice of rows read as a tensor, and ``to``
    that says where reads go."""

    def __init__(self, streamed: Streamed, part: int, row_shape: torch.Size, dtype: torch.dtype,
                 device: torch.device | str = "cpu"):
        self.streamed, self.part = streamed, part
        self.row_shape, self.dtype = torch.Size(row_shape), dtype
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        return torch.Size([self.streamed.length, *self.row_shape])

    def dim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return self.streamed.length

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> "Column":
        if not isinstance(device, (str, torch.device)):
            return self
        return Column(self.streamed, self.part, self.row_shape, self.dtype, device)

    def cpu(self) -> "Column":
        return self.to("cpu")

    def __getitem__(self, rows: Any) -> Tensor:
        if isinstance(rows, slice):
            index = torch.arange(self.streamed.length)[rows]
        else:
            index = torch.as_tensor(rows).reshape(-1)
        return self.streamed.fetch(index)[self.part].to(self.device)

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        if dim != 0:
            raise ValueError("a streamed split is read by rows (dim 0)")
        return self[index]

    def __repr__(self) -> str:
        what = ("inputs", "targets")[self.part]
        return f"Column({what}, shape={tuple(self.shape)}, dtype={self.dtype}, streamed)"
