"""Which of a researcher's modules go to the Ray nodes: the top-level package folder or
module file of each, found as the runner imports it (its import folder first), never an
installed package or nebtui's own code, which the nodes have as theirs; and the line a
node that cannot import one of them is refused with."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from sessions.disk.config import Problem
from sessions.processes.raypool import UserModule, cannot_import, node_refusal, shipping, user_modules


def network(model: str, data: str = "digits", loss: str = "cross_entropy") -> Problem:
    return Problem(kind="network", model=model, data=data, loss=loss)


def test_the_users_model_data_and_loss_are_their_modules_and_nebtuis_own_names_are_not():
    problem = network("lab.nets:mlp", "lab.data:digits", "labloss:smooth")
    assert user_modules(problem) == [UserModule("model", "lab.nets:mlp", "lab.nets"),
                                     UserModule("data", "lab.data:digits", "lab.data"),
                                     UserModule("loss", "labloss:smooth", "labloss")]
    assert user_modules(network("mlp")) == []
    assert user_modules(network("torchvision:resnet18", "mnist:/data")) == []
    assert user_modules(Problem(kind="surface", surface="muller_brown")) == []


def test_a_package_folder_and_a_module_file_of_the_import_folder_are_shipped_once_each(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "__init__.py").write_text("")
    (tmp_path / "lab" / "nets.py").write_text("")
    (tmp_path / "labloss.py").write_text("")
    modules = user_modules(network("lab.nets:mlp", "lab.data:digits", "labloss:smooth"))
    found = shipping(modules, str(tmp_path))
    assert found.paths == [str(tmp_path / "lab"), str(tmp_path / "labloss.py")]
    assert found.kept == {}
    assert "lab" not in sys.modules and "labloss" not in sys.modules  # found, not imported


def test_installed_packages_nebtuis_own_code_a_zipped_module_and_a_missing_one_stay_here(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as archive:
        archive.writestr("zippedloss.py", "")
    monkeypatch.syspath_prepend(str(tmp_path / "zipped.zip"))
    modules = [UserModule("model", "typer.main:Typer", "typer.main"),  # installed: site-packages
               UserModule("model", "engine.networks.models:mlp", "engine.networks.models"),  # nebtui's
               UserModule("loss", "zippedloss:smooth", "zippedloss"),  # no file Ray can take
               UserModule("data", "nowhere.data:digits", "nowhere.data")]
    found = shipping(modules, str(tmp_path))
    assert found.paths == []
    assert Path(found.kept["typer"] or "").parts[-3:] == ("site-packages", "typer", "__init__.py")
    assert found.kept["engine"] == str(Path(__file__).resolve().parents[3] / "engine" / "__init__.py")
    assert found.kept["zippedloss"] == str(tmp_path / "zipped.zip" / "zippedloss.py")
    assert found.kept["nowhere"] is None


def test_a_node_without_the_module_is_told_to_install_it_or_let_nebtui_ship_it(tmp_path):
    model = UserModule("model", "absentlab.nets:mlp", "absentlab.nets")
    module, why, missing = cannot_import([model])  # type: ignore[misc]
    assert (module, why, missing) == (model, "No module named 'absentlab'", "absentlab")
    line = node_refusal("node-3 (10.0.0.3)", model, why, missing, {"absentlab": "/opt/lab.zip/absentlab/__init__.py"})
    assert line == ("the Ray node node-3 (10.0.0.3) cannot import absentlab.nets for the model factory "
                    "absentlab.nets:mlp (No module named 'absentlab'); here it comes from "
                    "/opt/lab.zip/absentlab/__init__.py, which nebtui does not ship: install it on that node, or "
                    "keep it in a package folder or module file outside site-packages, which nebtui ships to the "
                    "nodes")


@pytest.mark.parametrize("body, advice", [
    ("import absentdependency\n", "install absentdependency on that node"),
    ("raise RuntimeError('no GPU here')\n", "fix the module, or install what it needs on that node"),
])
def test_a_shipped_module_that_fails_on_a_node_says_what_the_node_lacks(tmp_path, monkeypatch, body, advice):
    (tmp_path / "shippedlab.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shippedlab", raising=False)
    loss = UserModule("loss", "shippedlab:smooth", "shippedlab")
    failed = cannot_import([loss])
    assert failed is not None
    line = node_refusal("node-3 (10.0.0.3)", *failed, {})
    assert line.startswith("the Ray node node-3 (10.0.0.3) cannot import shippedlab for the loss function "
                           "shippedlab:smooth (") and line.endswith(f"): {advice}"), line
