"""From a session's config to the energy and the minima it explores, on a device.

Model specs: a zoo name (engine.networks.models.ZOO: mlp, small_cnn, resnet20/32/44/56,
densenet40_12, densenet100_12_bc), a model of torchvision's registry (``torchvision:resnet18``,
engine.networks.torchvision_zoo: random weights, never a download) or a user's
``package.module:factory``.
Data specs: ``digits`` (the embedded scikit-learn digits; ``digits-images`` for
8x8 images), ``cifar10:/path`` or ``cifar100:/path`` (torchvision's files in a
local folder; the paper's C10+/C100+ augmentation is done on the device),
``mnist:/path``, ``fashion-mnist:/path``, ``svhn:/path`` (torchvision's files),
``imagefolder:/path`` (train/ and val/, a folder per class; ``imagefolder@S:/path``
crops the images to S x S, 32 by default) or a user's ``package.module:factory``
returning an engine.networks.datasets.UserData.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sessions.disk.config import Problem, SessionConfig
from sessions.errors import SessionError
from sessions.problem.minima import flat_minimum, minimum_name, sha256

EMBEDDED = ("digits", "digits-images")
FOLDERS = ("cifar10", "cifar100", "mnist", "fashion-mnist", "svhn", "imagefolder")  # kind:/path
DATA_KINDS = EMBEDDED + FOLDERS + ("factory",)
CLASSES = {"digits": 10, "digits-images": 10, "cifar10": 10, "cifar100": 100, "mnist": 10, "fashion-mnist": 10,
           "svhn": 10}  # an image folder's: its class folders; a factory's: what it says
SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28),
          "svhn": (3, 32, 32)}  # one sample of each folder kind, (C, H, W)
DATA_USAGE = ("use digits, digits-images, cifar10:/path, cifar100:/path, mnist:/path, fashion-mnist:/path, svhn:/path, "
              "imagefolder:/path or package.module:factory")


@dataclass
class Built:
    energy: Any  # an engine Energy
    minima: Any  # Tensor (M, D), on the CPU whatever the device: the energy moves what it evaluates
    names: list[str]  # one per minimum
    model: Any = None  # networks: the model as built (its parameters are not the minima's)
    data: dict[str, Any] | None = None  # networks: what load_data gave (train, test, prepare, augment, classes)


@dataclass(frozen=True)
class DataSpec:
    kind: str  # one of DATA_KINDS
    root: Path | None  # the folder of a FOLDERS kind
    size: int | None = None  # imagefolder@SIZE: the side its images are cropped to (None: the default)
    factory: str | None = None  # "factory": the package.module:factory spec


def parse_data(spec: str | None) -> DataSpec:
    """What a --data spec names; one line saying what is wrong, else. Nothing is imported or read."""
    from sessions.problem.trust import is_data_factory

    kind, _, root = (spec or "").partition(":")
    kind, at, size_text = kind.partition("@")
    if kind not in FOLDERS + EMBEDDED and is_data_factory(spec):
        return DataSpec("factory", None, factory=spec)
    if kind not in FOLDERS + EMBEDDED:
        raise SessionError(f"unknown data {spec!r}: {DATA_USAGE}")
    size = None
    if at:
        if kind != "imagefolder" or not size_text.isdigit() or int(size_text) < 1:
            raise SessionError(f"data {spec!r}: only imagefolder takes a size, as imagefolder@SIZE:/path with "
                               f"SIZE a whole number of pixels (say imagefolder@64:/path)")
        size = int(size_text)
    if kind in FOLDERS:
        if not root:
            raise SessionError(f"data {spec!r} needs its folder: {kind}:/path/to/folder")
        return DataSpec(kind, Path(root).expanduser().absolute(), size)
    if root:
        raise SessionError(f"data {spec!r}: {kind} is embedded and takes no folder")
    return DataSpec(kind, None)


def absolute_data(spec: str) -> str:
    """The data spec with its folder, if it names one, made absolute: the runner and its
    workers read it from the session folder, not from where the command was typed."""
    data = parse_data(spec)
    if data.root is None:
        return spec
    return f"{spec.partition(':')[0]}:{data.root}"


def _factory(spec: str, import_dir: str | None = None) -> Callable[..., Any]:
    from engine.networks.models import ZOO
    from engine.networks.torchvision_zoo import is_torchvision, torchvision_factory

    if spec in ZOO:
        return ZOO[spec]
    if is_torchvision(spec):  # looked up in torchvision's registry, never imported by name
        try:
            return torchvision_factory(spec)
        except ValueError as error:
            raise SessionError(str(error)) from None
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SessionError(f"unknown model {spec!r}: use one of {', '.join(ZOO)} or package.module:factory")
    module = _import_module(module_name, spec, import_dir)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SessionError(f"{module_name} has no callable {attribute!r}: check --model {spec}")
    return factory


def _import_module(module_name: str, spec: str, import_dir: str | None, what: str = "model") -> Any:
    """The user's module, looked for first in ``import_dir`` (the folder they typed the command
    in), as ``python -m`` would; the folder stays searched, for the modules it imports later.
    ``what`` names the spec in messages: model or data."""
    import sys

    if import_dir is not None and import_dir not in sys.path:
        sys.path.insert(0, import_dir)
        importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        top = module_name.partition(".")[0]
        if error.name is not None and module_name.startswith(error.name):  # the module itself is not there
            where = f" from {import_dir}" if import_dir else ""
            raise SessionError(f"cannot import {module_name!r} for {what} {spec!r}{where}: run nebtui in the folder "
                               f"that holds {top}.py (or the package {top}/), or add that folder to PYTHONPATH"
                               ) from None
        raise SessionError(f"importing {module_name} for {what} {spec!r} failed ({error}): install what it "
                           f"needs or fix its imports") from None
    except Exception as error:  # noqa: BLE001 - a user's module may raise anything while it is imported
        raise SessionError(f"importing {module_name} for {what} {spec!r} failed ({type(error).__name__}: "
                           f"{error}): fix the module") from None


def _data_factory(spec: str, import_dir: str | None) -> Callable[..., Any]:
    """A user's data factory ``package.module:factory``, imported as a model factory is."""
    module_name, _, attribute = spec.partition(":")
    module = _import_module(module_name, spec, import_dir, what="data")
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SessionError(f"{module_name} has no callable {attribute!r}: check --data {spec}")
    return factory


LOSS_NAMES = ("cross_entropy", "bce", "mse")  # engine.networks.loss.NAMES, without importing torch
LOSS_USAGE = ("use cross_entropy, bce, mse or package.module:function (a function (outputs, targets) -> scalar, "
              "or (model, batch) -> scalar)")


def parse_loss(spec: str) -> str:
    """A --loss spec checked, nothing imported: one of nebtui's losses, or a user's
    ``package.module:function``; one line with a "did you mean", else."""
    import difflib

    from sessions.problem.trust import is_loss_function

    if spec in LOSS_NAMES or is_loss_function(spec):
        return spec
    close = difflib.get_close_matches(spec.replace("-", "_"), LOSS_NAMES, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise SessionError(f"unknown loss {spec!r}{hint}: {LOSS_USAGE}")


def sidecar_loss(known: dict[str, Any], folder: Path) -> str:
    """The sidecars' loss, if it is one of nebtui's; a ``package.module:function`` is refused
    (it runs when the user types it), and so is anything else."""
    from sessions.problem.trust import is_loss_function

    loss = known.get("loss", "cross_entropy")
    if loss in LOSS_NAMES:
        return loss
    if is_loss_function(loss):
        raise SessionError(f"the sidecars in {folder} name the loss function {loss}, and nebtui runs no code named "
                           f"in a file: if you trust it, pass --loss {loss}")
    raise SessionError(f"the sidecars in {folder} name the loss {loss!r}, which is not one of "
                       f"{', '.join(LOSS_NAMES)}: pass --loss")


def resolve_loss(problem: Problem) -> Any:
    """The problem's loss as the engine takes it: a name of nebtui's, or the user's function
    imported as a model factory is (only ever from a spec this user typed or vouched for)."""
    spec = parse_loss(problem.loss)
    if spec in LOSS_NAMES:
        return spec
    module_name, _, attribute = spec.partition(":")
    module = _import_module(module_name, spec, problem.import_dir, what="loss")
    function = getattr(module, attribute, None)
    if not callable(function):
        raise SessionError(f"{module_name} has no function {attribute!r}: check --loss {spec}")
    return function


def check_loss(model: Any, problem: Problem, data: dict[str, Any], loss: Any) -> None:
    """Run a user's loss on two training samples, so that one that fails or gives no scalar
    is one line before anything trains or explores. nebtui's own losses need no check."""
    import torch

    from engine.energy.network import model_batch
    from engine.networks.loss import takes_model

    if isinstance(loss, str):
        return
    x, y = data["train"][0][:2].to("cpu"), data["train"][1][:2].cpu()
    if data["prepare"] is not None:
        x = data["prepare"](x)
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            value = loss(model, model_batch(x, y)) if takes_model(loss) else loss(model(x), y)
    except Exception as error:  # noqa: BLE001 - a user's loss may raise anything
        first = (str(error).splitlines() or [""])[0][:200]
        form = "(model, batch)" if takes_model(loss) else "(outputs, targets)"
        raise SessionError(f"loss {problem.loss} fails on 2 training samples, called as {form} "
                           f"({type(error).__name__}: {first}): fix it") from None
    finally:
        model.train(training)
    if not (isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point()):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise SessionError(f"loss {problem.loss} returned {shape}, not a scalar tensor: return the batch's mean "
                           f"loss (say .mean())")


def data_classes_and_shape(problem: Problem, loaded: dict[str, Any] | None = None) -> tuple[int, tuple[int, ...]]:
    """The class count and one stored sample's shape of the problem's data: known from the
    kind where it can be (an image folder's class folders are counted), else from ``loaded``
    (load_data's result; loaded here, on the CPU, when not given)."""
    data = parse_data(problem.data)
    if data.kind in CLASSES and data.kind in SHAPES:
        return CLASSES[data.kind], SHAPES[data.kind]
    if data.kind in EMBEDDED:
        return CLASSES[data.kind], ((1, 8, 8) if _images(problem) else (64,))
    if data.kind == "imagefolder" and loaded is None:
        from engine.networks.datasets import IMAGE_SIZE, image_folder_classes

        size = data.size or IMAGE_SIZE
        try:
            return len(image_folder_classes(data.root, spec=problem.data)), (3, size, size)  # type: ignore[arg-type]
        except ValueError as error:
            raise SessionError(str(error)) from None
    loaded = loaded if loaded is not None else load_data(problem, "cpu")
    sample = loaded["train"][0][:1]  # (1, ...) as stored
    if loaded["prepare"] is not None:
        sample = loaded["prepare"](sample)
    return loaded["classes"], tuple(sample.shape[1:])


def model_arguments(problem: Problem, loaded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The factory's keyword arguments: the user's, plus the class count and (for the
    MLP on images) the input size the data implies, where the factory takes them (a
    torchvision model: ``num_classes``). ``loaded``: load_data's result, if at hand (a
    data factory's classes are known only once it has run)."""
    import math

    from engine.networks.torchvision_zoo import is_torchvision, refuse_weights

    data = parse_data(problem.data)
    arguments = dict(problem.model_args)
    factory = _factory(problem.model or "", problem.import_dir)
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    _check_names(problem.model, arguments, accepted)
    wanted = (("classes" in accepted and "classes" not in arguments)  # what the data must say, if not given
              or (is_torchvision(problem.model) and "num_classes" not in arguments)
              or (problem.model == "mlp" and data.kind not in EMBEDDED and "inputs" not in arguments))
    classes, shape = data_classes_and_shape(problem, loaded) if wanted else (0, ())
    if "classes" in accepted:
        arguments.setdefault("classes", classes)
    if is_torchvision(problem.model):
        try:
            refuse_weights(problem.model, arguments)  # type: ignore[arg-type]
        except ValueError as error:
            raise SessionError(str(error)) from None
        arguments.setdefault("num_classes", classes)
    if data.kind not in EMBEDDED:
        if problem.model == "mlp":
            arguments.setdefault("inputs", math.prod(shape))  # prepare flattens the images
        if problem.model == "small_cnn" and data.kind in FOLDERS:
            raise SessionError(f"small_cnn is for the 8x8 digits: use resnet20 (or another model for images) on "
                               f"{problem.data}")
    return arguments


def _check_names(model: Any, arguments: dict[str, Any], accepted: Any) -> None:
    """Refuse arguments the factory does not name (unless it takes any ``**keywords``)."""
    if not accepted or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise SessionError(f"model {model} takes no argument {unknown[0]!r}: it takes "
                           f"{', '.join(accepted) or 'none'} (check --model-arg)")


def build_model(problem: Problem, loaded: dict[str, Any] | None = None) -> Any:
    """The problem's model; ``loaded``: load_data's result, if at hand (see model_arguments)."""
    factory = _factory(problem.model or "", problem.import_dir)
    try:
        return factory(**model_arguments(problem, loaded))
    except SessionError:
        raise
    except Exception as error:  # noqa: BLE001 - a user's factory may raise anything
        raise SessionError(f"model {problem.model!r} could not be built ({type(error).__name__}: {error})") from None


def check_input_fits(model: Any, problem: Problem, data: dict[str, Any]) -> None:
    """Run the model on two training samples, so that a model made for other inputs (a
    ResNet's 3-channel images on the 1-channel digits) is one line naming both shapes
    before anything trains or explores, not torch's error from deep inside a layer."""
    inputs = data["train"][0][:2].cpu()  # (2, ...) as the energy feeds them, before prepare
    if data["prepare"] is not None:
        inputs = data["prepare"](inputs)
    misfit = input_misfit(model, inputs)
    if misfit is not None:
        takes, shape = misfit
        raise SessionError(f"model {problem.model} does not fit the data {problem.data}: {takes}, and "
                           f"{problem.data} gives inputs of shape ({shape}): choose a --model made for this data, "
                           f"or --data made for this model")


def input_misfit(model: Any, inputs: Any) -> tuple[str, str] | None:
    """None where ``model`` runs on ``inputs`` (a few samples, prepared, on its device);
    else what its first layer takes, or how it fails, and the inputs' shape ("N, 1, 8, 8").
    The model is run in eval mode without gradients and left in the mode it was in."""
    import torch

    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs)
    except Exception as error:  # noqa: BLE001 - any failure on the data is this mismatch
        takes = _first_layer_misfit(model, inputs)
        if takes is None:  # the first layer fits: say where it failed instead
            first = (str(error).splitlines() or [""])[0]
            takes = f"it fails on them ({type(error).__name__}: {first})"
        return takes, ", ".join(["N", *map(str, inputs.shape[1:])])
    finally:
        model.train(training)
    return None


def check_fits_and_loss(model: Any, problem: Problem, data: dict[str, Any], loss: Any) -> None:
    """The model runs on the data (unless a (model, batch) loss runs it itself) and a
    user's loss gives a scalar on two training samples: one line, else."""
    from engine.networks.loss import takes_model

    if isinstance(data["train"][0], dict) and not takes_model(loss):
        raise SessionError(f"data {problem.data} gives dict items, which only a (model, batch) loss can take: pass "
                           f"--loss package.module:function with parameters (model, batch), not {problem.loss}")
    if not takes_model(loss):
        check_input_fits(model, problem, data)
    check_loss(model, problem, data, loss)


def check_alignable(model: Any) -> None:
    """Refuse, in one line, ``--align`` on a model weight matching cannot analyse (a
    grouped convolution, an operation that mixes channels...): found by tracing the
    model as built, on the CPU, before any minimum is read or evaluated."""
    from engine.alignment.groups import permutation_spec

    try:
        permutation_spec(model)
    except ValueError as error:
        raise SessionError(f"--align: {error}; leave --align out to connect the minima as they are") from None


def _first_layer_misfit(model: Any, inputs: Any) -> str | None:
    """What the model's first layer takes, in words, when ``inputs`` (N, ...) do not fit it; else None."""
    from torch import nn

    for layer in model.modules():
        if isinstance(layer, nn.modules.conv._ConvNd):
            dims = len(layer.kernel_size)
            if inputs.dim() == dims + 2 and inputs.shape[1] == layer.in_channels:
                return None
            spatial = ", ".join("HWD"[:dims])
            return f"its first layer takes images of {layer.in_channels} channels (N, {layer.in_channels}, {spatial})"
        if isinstance(layer, nn.Linear):
            if inputs.shape[-1] == layer.in_features:
                return None
            return f"its first layer takes {layer.in_features} features per sample (N, {layer.in_features})"
    return None


def _images(problem: Problem) -> bool:
    from engine.networks.models import INPUTS
    from engine.networks.torchvision_zoo import is_torchvision

    data = parse_data(problem.data)
    if data.kind not in EMBEDDED:  # images, or a factory's inputs as it shapes them: flattened for the MLP
        return problem.model != "mlp"
    images = is_torchvision(problem.model) or INPUTS.get(problem.model or "", "flat") == "images"
    return data.kind == "digits-images" or images


def load_data(problem: Problem, device: str, download: bool = False, placement: str = "memory") -> dict[str, Any]:
    """Training and test tensors, the energy's prepare/augment and the class count for the data spec.
    ``placement``: where a data factory's Datasets go (memory, stream or auto: engine.networks.stream)."""
    data = parse_data(problem.data)
    if placement == "stream" and data.kind != "factory":
        raise SessionError(f"--data-in stream reads a data factory's Dataset batch by batch; {problem.data} is read "
                           f"into memory: leave --data-in out, or give --data package.module:factory")
    if download and data.kind in ("imagefolder", "factory"):
        raise SessionError(f"--download fetches torchvision's data sets (cifar10, cifar100, mnist, fashion-mnist, "
                           f"svhn): {problem.data} is your own data, already in place; leave --download out")
    if data.kind in ("mnist", "fashion-mnist", "svhn", "imagefolder", "factory"):
        return _load_tensors(problem, data, device, download, placement)
    if data.kind.startswith("cifar"):
        from engine.networks.cifar import augment, load_cifar, normalise

        try:
            cifar = load_cifar(data.kind, data.root, download=download, device=device)  # type: ignore[arg-type]
        except ValueError as error:
            raise SessionError(str(error)) from None
        flat = not _images(problem)

        def prepare(x: Any) -> Any:
            x = normalise(x, data.kind)
            return x.flatten(1) if flat else x

        return {
            "train": (cifar.train.images, cifar.train.labels),
            "test": (cifar.test.images, cifar.test.labels),
            "prepare": prepare,
            "augment": augment,
            "classes": cifar.classes,
        }
    from engine.networks.data import digits

    split = digits()
    images = _images(problem)
    train_x = split.train.images() if images else split.train.inputs
    test_x = split.test.images() if images else split.test.inputs
    return {
        "train": (train_x.to(device), split.train.targets.to(device)),
        "test": (test_x.to(device), split.test.targets.to(device)),
        "prepare": None,
        "augment": None,
        "classes": CLASSES[data.kind],
    }


def _load_tensors(problem: Problem, data: DataSpec, device: str, download: bool,
                  placement: str = "memory") -> dict[str, Any]:
    """MNIST, Fashion-MNIST, SVHN, an image folder or a user's data factory, as load_data gives them."""
    from engine.networks import datasets

    flat = not _images(problem)
    try:
        if data.kind in ("mnist", "fashion-mnist"):
            loaded = datasets.load_mnist(data.kind, data.root, spec=problem.data, download=download, flat=flat,
                                         device=device)  # type: ignore[arg-type]
        elif data.kind == "svhn":
            loaded = datasets.load_svhn(data.root, spec=problem.data, download=download, flat=flat,
                                        device=device)  # type: ignore[arg-type]
        elif data.kind == "imagefolder":
            loaded = datasets.load_image_folder(data.root, spec=problem.data, size=data.size or datasets.IMAGE_SIZE,
                                                flat=flat, device=device)  # type: ignore[arg-type]
        else:
            factory = _data_factory(data.factory, problem.import_dir)  # type: ignore[arg-type]
            try:
                result = factory()
            except Exception as error:  # noqa: BLE001 - a user's factory may raise anything
                first = (str(error).splitlines() or [""])[0][:200]
                raise SessionError(f"data factory {data.factory} failed ({type(error).__name__}: {first}): fix it"
                                   ) from None
            loaded = datasets.user_tensors(result, spec=data.factory, device=device,  # type: ignore[arg-type]
                                           placement=placement)
    except ValueError as error:
        raise SessionError(str(error)) from None
    except OSError as error:  # a folder that cannot be read
        raise SessionError(f"{problem.data}: {error.strerror or error}: check that the folder can be read") from None
    prepare = loaded.prepare
    if flat and data.kind == "factory":  # the MLP takes the factory's inputs flattened
        given = prepare
        prepare = (lambda x: given(x).flatten(1)) if given is not None else (lambda x: x.flatten(1))
    return {"train": loaded.train, "test": loaded.test, "prepare": prepare, "augment": loaded.augment,
            "classes": loaded.classes}


def build(config: SessionConfig, device: str = "cpu", threads: int | None = None) -> Built:
    """The session's energy on ``device`` (at most ``threads`` torch threads in its steps on
    the CPU; None: torch's count now) and its minima."""
    problem = config.problem
    if problem.kind == "surface":
        from engine.energy.surfaces import SURFACES

        surface = SURFACES[problem.surface]()  # type: ignore[index]
        return Built(surface, surface.minimum_positions(), [f"minimum {i}" for i in range(len(surface.minima))])
    import torch

    from engine.energy.network import NetworkEnergy
    from engine.networks.layout import ParameterLayout
    from engine.networks.loss import takes_model

    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    data = load_data(problem, device, placement=config.data_in)
    model = build_model(problem, data)
    if config.align:
        check_alignable(model)
    layout = ParameterLayout.from_module(model)
    buffers = [name for name, _ in model.named_buffers()]  # a checkpoint may hold them: not parameters, not foreign
    vectors, names = [], []
    for entry in problem.minima:
        path = Path(entry["path"])
        if not path.exists():
            raise SessionError(f"minimum {path} is gone: restore it (the session needs its minima files)")
        if entry.get("sha256") and sha256(path) != entry["sha256"]:  # a model folder's digest covers its shards
            original = "files" if path.is_dir() else "file"
            raise SessionError(f"minimum {path} changed since the session started: restore the original {original}")
        vectors.append(flat_minimum(path, layout, buffers))
        names.append(minimum_name(path))
    loss = resolve_loss(problem)
    check_fits_and_loss(model, problem, data, loss)
    train_x, train_y = data["train"]
    if not isinstance(loss, str) and config.strategy in ("vmap", "batched") and takes_model(loss):
        raise SessionError(f"loss {problem.loss} takes (model, batch), which runs under --strategy loop, not "
                           f"{config.strategy}: use --strategy loop or auto")
    energy = NetworkEnergy(
        model, train_x, train_y, loss, strategy=config.strategy, device=device,
        prepare=data["prepare"], augment=data["augment"],
        precision=config.precision, channels_last=config.channels_last, compile=config.compile, threads=threads,
        thread_trial=config.threads is None,  # --threads: that many, never fewer
    )
    # The minima stay on the CPU, like every state that travels between processes
    # and every path result: runner, reports and workers never mix devices.
    built = Built(energy, torch.stack(vectors), names, model, data)
    if not config.align:
        return built
    return AlignedBuilt(built, seed=config.seed) if config.alignment == "lowest" else PairwiseBuilt(built,
                                                                                                  seed=config.seed)


class PairwiseBuilt(Built):
    """A network problem whose pairs are aligned one by one (--align-pairwise): each pair's
    second minimum has its hidden units permuted by weight matching to match its first,
    which changes nothing either computes. ``minima`` are the minima as read; ``ends``
    gives a pair's two ends as its path joins them (what ``Exploration`` asks for a new
    pair), each alignment done once, when first asked."""

    def __init__(self, built: Built, *, seed: int):
        super().__init__(built.energy, built.minima, built.names, built.model, built.data)
        self.seed = seed
        self.distances: dict[tuple[int, int], tuple[float, float]] = {}  # |a - b| before and after
        self._ends: dict[tuple[int, int], tuple[Any, Any]] = {}

    def ends(self, pair: tuple[int, int]) -> tuple[Any, Any]:
        """(minimum a, minimum b aligned to a), each (D,)."""
        if pair not in self._ends:
            from engine.alignment.weight_matching import align

            a, b = pair
            start, end = self.minima[a], self.minima[b]
            try:
                moved = align(self.model, start, end, seed=self.seed)
            except ValueError as error:  # a layer weight matching cannot analyse
                raise SessionError(f"--align-pairwise: {error}") from None
            self._ends[pair] = (start, moved.params.to(end.dtype))
            self.distances[pair] = (moved.distance_before, moved.distance_after)
        return self._ends[pair]


class AlignedBuilt(Built):
    """A network problem whose minima are aligned (--align): every minimum's hidden
    units permuted by weight matching to match the lowest one (by training loss,
    BatchNorm recalibrated), which changes nothing any of them computes. The files
    are left as they are: ``original`` holds the minima as read.

    The alignment is done when ``minima`` is first read (a new session's runner, a
    report), not where only the energy is needed (the workers)."""

    def __init__(self, built: Built, *, seed: int):
        super().__init__(built.energy, built.minima, built.names, built.model, built.data)
        self.seed = seed
        self.reference: int | None = None  # the lowest minimum, once aligned
        self.distances: list[tuple[float, float]] = []  # per minimum: |reference - minimum| before and after

    @property  # type: ignore[override]
    def minima(self) -> Any:
        if self._aligned is None:
            self._aligned = self._align()
        return self._aligned

    @minima.setter
    def minima(self, value: Any) -> None:
        self.original = value  # (M, D), as read from the files
        self._aligned = None

    def _align(self) -> Any:
        import torch

        from engine.alignment.weight_matching import align

        energies = self.energy.evaluate(self.original)  # (M,)
        self.reference = int(torch.argmin(energies))
        reference = self.original[self.reference]
        rows, self.distances = [], []
        for i, minimum in enumerate(self.original):
            if i == self.reference:
                rows.append(minimum)
                self.distances.append((0.0, 0.0))
                continue
            try:
                moved = align(self.model, reference, minimum, seed=self.seed)
            except ValueError as error:  # a layer weight matching cannot analyse
                raise SessionError(f"--align: {error}") from None
            rows.append(moved.params.to(minimum.dtype))
            self.distances.append((moved.distance_before, moved.distance_after))
        return torch.stack(rows)
