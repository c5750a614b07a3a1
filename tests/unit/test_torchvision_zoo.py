"""`--model torchvision:NAME`: the name is looked up in torchvision's model registry and
nowhere else, the model is built from random weights (nothing downloaded), and a name,
an argument or an `--align` that cannot be served is one line."""

from __future__ import annotations

import pytest
import torch

from engine.networks.torchvision_zoo import torchvision_factory
from engine.networks.training import default_recipe
from sessions.problem import trust
from sessions.disk.config import Problem
from sessions.errors import SessionError
from sessions.problem.minima_folder import sidecar_model
from sessions.problem.build import build_model, check_alignable, model_arguments


def problem(model: str, data: str = "digits-images", **arguments: object) -> Problem:
    return Problem(kind="network", model=model, model_args=dict(arguments), data=data)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any fetch of pretrained weights fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a download was attempted: {args}")

    import torchvision.models._api

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)  # what weights.get_state_dict calls
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_a_registry_name_builds_from_random_weights_with_the_data_s_classes():
    torch.manual_seed(0)
    net = build_model(problem("torchvision:resnet18", data="cifar100:/nowhere"))

    assert type(net).__name__ == "ResNet" and net.fc.out_features == 100  # num_classes from the data
    assert model_arguments(problem("torchvision:resnet18", num_classes=7)) == {"num_classes": 7}
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_a_builder_that_would_fetch_its_backbone_gets_none():
    net = build_model(problem("torchvision:lraspp_mobilenet_v3_large"))  # weights_backbone: ImageNet by default

    assert type(net).__name__ == "LRASPP"


@pytest.mark.parametrize("typed, message", [
    ("resnet19", "unknown torchvision model 'resnet19': did you mean torchvision:resnet18, "),
    ("ResNet18", "unknown torchvision model 'ResNet18': did you mean torchvision:resnet18, "),
    ("os.system", "unknown torchvision model 'os.system': use a name of torchvision.models.list_models()"),
    ("models.resnet18", "unknown torchvision model 'models.resnet18': "),
    ("datasets.utils:download_url", "unknown torchvision model 'datasets.utils:download_url': "),
])
def test_only_the_registry_s_own_names_are_built(typed, message):
    with pytest.raises(SessionError) as raised:
        build_model(problem(f"torchvision:{typed}"))

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("argument", ["weights", "weights_backbone"])
def test_pretrained_weights_are_refused_in_one_line(argument):
    with pytest.raises(SessionError) as raised:
        build_model(problem("torchvision:resnet18", **{argument: "IMAGENET1K_V1"}))

    assert str(raised.value).startswith(f"model torchvision:resnet18 is built from random weights and nebtui "
                                        f"downloads none: leave out --model-arg {argument}=IMAGENET1K_V1")
    assert torchvision_factory("torchvision:resnet18")(weights=None, num_classes=3).fc.out_features == 3


def test_torchvision_names_need_no_vouch_and_are_read_back_from_sidecars(tmp_path):
    assert trust.is_zoo("torchvision:resnet18") and trust.is_zoo("torchvision:os.system")  # refused when built
    assert not trust.is_zoo("torchvision.models:resnet18")  # a module path: the user's code, vouched for
    known = {"model": "torchvision:resnet18", "model_args": {"num_classes": 10}, "data": "cifar10:/c"}
    assert sidecar_model(known, tmp_path) == "torchvision:resnet18"
    with pytest.raises(SessionError, match="name the model factory torchvision.models:resnet18"):
        sidecar_model({**known, "model": "torchvision.models:resnet18"}, tmp_path)


def test_training_a_torchvision_model_asks_for_a_recipe():
    with pytest.raises(ValueError) as raised:
        default_recipe("torchvision:resnet18")

    assert str(raised.value) == ("torchvision:resnet18 has no default training recipe: choose one with --recipe "
                                 "(he2016, huang2017, digits)")


def test_align_is_refused_on_a_model_weight_matching_cannot_analyse():
    check_alignable(build_model(problem("torchvision:resnet18")))  # traced whole: no refusal

    with pytest.raises(SessionError) as raised:
        check_alignable(build_model(problem("torchvision:mnasnet0_5")))

    assert str(raised.value) == ("--align: cannot analyse layer 'layers.3': grouped convolutions (groups=16) are not "
                                 "supported; leave --align out to connect the minima as they are")
