"""torchvision's own models by name (``torchvision:resnet18``), built from random weights.

The name is looked up in torchvision's model registry (``torchvision.models.list_models()``)
and only there: it is never read as an attribute or module path, so a name from a
session's config.json can only ever call one of torchvision's own builders. Nothing
is downloaded: a builder is called with ``weights=None`` (and ``weights_backbone=None``
where it takes one, as the detection and segmentation builders do), and model
arguments asking for pretrained weights are refused.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

PREFIX = "torchvision:"  # sessions.problem.trust.TORCHVISION_PREFIX, without importing torch there
WEIGHT_ARGUMENTS = ("weights", "weights_backbone")  # what a builder would download


def is_torchvision(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def torchvision_factory(spec: str) -> Callable[..., nn.Module]:
    """The factory of the registry's model ``spec`` (``torchvision:NAME``): it takes the
    builder's keyword arguments (``num_classes=10``, ...) and builds the model from random
    weights. A ValueError says what is wrong with the name, with close matches."""
    from torchvision.models import get_model_builder, list_models

    name = spec.removeprefix(PREFIX)
    known = list_models()
    if name not in known:
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(PREFIX + c for c in close)}?" if close else \
            "use a name of torchvision.models.list_models(), as torchvision:resnet18"
        raise ValueError(f"unknown torchvision model {name!r}: {hint}")
    builder = get_model_builder(name)
    downloads = [a for a in WEIGHT_ARGUMENTS if a in inspect.signature(builder).parameters]

    def build(**arguments: Any) -> nn.Module:  # the builder's keywords, passed on to the model's class
        refuse_weights(spec, arguments)
        return builder(**{a: None for a in downloads}, **{k: v for k, v in arguments.items() if k not in downloads})

    build.__doc__ = builder.__doc__
    return build


def refuse_weights(spec: str, arguments: dict[str, Any]) -> None:
    """A ValueError if ``arguments`` ask for pretrained weights (anything but None)."""
    for argument in WEIGHT_ARGUMENTS:
        if arguments.get(argument) is not None:
            raise ValueError(f"model {spec} is built from random weights and nebtui downloads none: leave out "
                             f"--model-arg {argument}={arguments[argument]} (explore pretrained weights by putting "
                             f"them in the minima folder)")
