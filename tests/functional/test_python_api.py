"""nebtui.connect_minima, the minima of a model connected from Python in the caller's process:
its result, the same numbers as a session of the command line on the same minima files,
data, model and schedule, its session folder read by sessions show and report, and its
refusals (one ValueError or TypeError line each). A digits MLP with 8 hidden units,
three minima, a schedule of 30 steps a pair."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import nebtui
from cli_runs import in_process, nebtui as nebtui_process, sgd_schedule
from engine.networks.data import digits
from engine.networks.models import ZOO

pytestmark = pytest.mark.timeout(300)

HIDDEN = [8]
# Two inserting cycles and one without, 10 steps each, on a band of at most 6 pivots.
SCHEDULE = sgd_schedule("few", 6, (2, 10), (1, 10))


def _model() -> torch.nn.Module:
    return ZOO["mlp"](hidden=HIDDEN)


@pytest.fixture(scope="module")
def data():
    split = digits()
    return (split.train.inputs, split.train.targets), (split.test.inputs, split.test.targets)


@pytest.fixture(scope="module")
def states(data) -> list[dict[str, torch.Tensor]]:
    """Three minima: full-batch gradient descent from three seeds."""
    (x, y), _ = data
    found = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = _model()
        optimiser = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        for _ in range(150):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
        found.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return found


@pytest.fixture(scope="module")
def schedule(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schedule") / "few.toml"
    path.write_text(SCHEDULE)
    return path


@pytest.fixture(scope="module")
def run(data, states, schedule):
    """connect_minima at the command line's batched strategy and one thread, and its progress line."""
    train, test = data
    progress = io.StringIO()
    connected = nebtui.connect_minima(_model(), states, train=train, test=test, schedule=schedule, strategy="batched",
                               threads=1, device="cpu", seed=0, stream=progress)
    return connected, progress.getvalue()


def test_connect_returns_the_saddles_and_the_mst(run):
    connected, progress = run
    assert set(connected.saddles) == {(0, 1), (0, 2), (1, 2)}  # all pairs, the default stop rule
    assert connected.finished_reason == "all_pairs"
    assert len(connected.mst) == 2 and {a for a, b, _ in connected.mst} | {b for a, b, _ in connected.mst} == {0, 1, 2}
    for a, b, saddle in connected.mst:
        assert saddle == connected.saddles[(a, b)]
    for (a, b), result in connected.paths.items():
        # The saddle is the highest point of the path, whose ends are the two minima
        assert result.saddle_energy >= max(connected.energies[a], connected.energies[b])
        assert result.pivots.shape[1] == connected.minima.shape[1]
    assert set(connected.test.saddle_loss) == set(connected.saddles)  # the test set at every saddle point
    assert all(0 <= error <= 1 for error in connected.test.saddle_error.values())
    # rewritten at most a few times a second, and always as each pair finishes
    assert progress.startswith("\rnebtui: 0 of at most 3 pairs") and progress.endswith("3 of at most 3 pairs\n")


def test_connect_gives_the_numbers_of_a_session_of_the_command_line(run, states, schedule, tmp_path, nebtui_home):
    """The same minima as files, explored by a real runner and worker at the same strategy,
    thread count and seed: the same energies, saddles and MST, every tensor of every path's
    state bit for bit (the pivots, the optimiser's state, the profiles), and the result
    files save writes byte for byte those of the runner."""
    connected, _ = run
    folder = tmp_path / "minima"
    folder.mkdir()
    for i, state in enumerate(states):
        save_file(state, str(folder / f"m{i}.safetensors"))
    done = nebtui_process(nebtui_home, "explore", str(folder), "--model", "mlp", "--model-arg", f"hidden={HIDDEN}",
                          "--data", "digits", "--schedule", str(schedule), "--strategy", "batched", "--threads", "1",
                          "--device", "cpu", "--seed", "0", "--headless", "--session", "cli")
    assert done.returncode == 0, done.stderr
    cli = nebtui_home / "cli" / "results"
    result = json.loads((cli / "result.json").read_text())
    assert [m["energy"] for m in result["minima"]] == connected.energies
    assert {(p["a"], p["b"]): p["saddle_energy"] for p in result["paths"]} == connected.saddles
    assert [(m["a"], m["b"], m["saddle_energy"]) for m in result["mst"]] == connected.mst
    mine = Path(connected.save("mine", model="mlp", data="digits", model_args={"hidden": HIDDEN})) / "results"
    for pair in connected.paths:
        name = f"paths/{pair[0]}-{pair[1]}.safetensors"
        ours, theirs = load_file(str(mine / name)), load_file(str(cli / name))
        assert ours.keys() == theirs.keys()
        assert [k for k in ours if not (ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]))] == []
        assert (mine / name).read_bytes() == (cli / name).read_bytes()  # the state's header (meta) too
    assert (mine / "result.json").read_bytes() == (cli / "result.json").read_bytes()


def test_a_saved_run_is_a_finished_session_that_show_and_report_read(run, nebtui_home):
    connected, _ = run
    path = connected.save("saved", model="mlp", data="digits", model_args={"hidden": HIDDEN})
    assert path == nebtui_home / "saved"
    config = json.loads((path / "config.json").read_text())
    assert [Path(m["path"]).parent for m in config["problem"]["minima"]] == [path / "minima"] * 3
    shown = in_process("sessions", "show", "saved", home=nebtui_home)
    assert shown.returncode == 0, shown.stderr
    assert "finished" in shown.stdout and "3 done" in shown.stdout
    listed = in_process("sessions", "list", home=nebtui_home)
    assert "saved" in listed.stdout and "finished" in listed.stdout
    report = in_process("report", "saved", "--format", "json", "--hessian-k", "0", "--slices", "0",
                        "--ensemble-k", "0", home=nebtui_home)
    assert report.returncode == 0, report.stderr
    document = json.loads((path / "results" / "report" / "report.json").read_text())
    assert len(document["minima"]) == 3
    # The report evaluates the minima again from the files save wrote: the same training loss, as
    # report.json writes it: rounded to 10 significant digits, half a unit of the last one at most
    assert [m["train"]["loss"] for m in document["minima"]] == pytest.approx(connected.energies, rel=5e-10)
    assert [m["test"]["loss"] for m in document["minima"]] == pytest.approx(connected.test.minima_loss, rel=5e-10)
    assert [m["test"]["error"] for m in document["minima"]] == pytest.approx(connected.test.minima_error,
                                                                             rel=5e-10)


def test_save_refuses_without_the_names_the_report_needs(run, nebtui_home):
    connected, _ = run
    with pytest.raises(ValueError, match="save needs the model and the data by the names"):
        connected.save("nameless")
    with pytest.raises(ValueError, match="neither a name of nebtui's zoo"):
        connected.save("odd", model="not a name", data="digits")
    with pytest.raises(ValueError, match="unknown data"):
        connected.save("odd", model="mlp", data="nowhere")
    assert not (nebtui_home / "nameless").exists() and not (nebtui_home / "odd").exists()


def _refusal(kind: type[Exception], match: str, *args, **kwargs) -> None:
    with pytest.raises(kind, match=match) as raised:
        nebtui.connect_minima(*args, **kwargs, progress=False)
    assert "\n" not in str(raised.value)


def test_bad_input_is_one_clear_line(data, states, tmp_path):
    train, test = data
    faulty = tmp_path / "faulty.toml"  # two faults: two lines of the schedule's, said in one
    faulty.write_text(SCHEDULE.replace("max_pivots = 6", "max_pivots = 3").replace("insert = true", "insert = false"))
    _refusal(ValueError, "at least 2 minima, got 1", _model(), states[:1], train=train)
    _refusal(ValueError, "unknown loss 'hinge'", _model(), states, train=train, loss="hinge")
    _refusal(TypeError, "nn.Module", {"weight": 1}, states, train=train)
    _refusal(ValueError, "unknown stop rule", _model(), states, train=train, stop="soon")
    _refusal(ValueError, "max_pivots must be", _model(), states, train=train, schedule=faulty)
    x, y = train
    _refusal(ValueError, "train set has inputs of shape", _model(), states, train=(x, y[:-1]))
    renamed = {("head.weight" if k == "0.weight" else k): v for k, v in states[1].items()}
    _refusal(ValueError, r"minimum 1 \(a state dict\) does not fit the model \(missing '0.weight'; unexpected "
             r"'head.weight'\)", _model(), [states[0], renamed], train=train)
    _refusal(ValueError, r"does not fit the training inputs of shape \(N, 64\)", ZOO["mlp"](inputs=32), states,
             train=train)


# One cycle of two steps: a path to check what is run, not how good it is.
TINY = """name = "one"
[band]
initial_pivots = 3
max_pivots = 5
[[phase]]
repeat = 1
steps = 2
lr = 0.01
optimiser = "SGD"
batch_size = 64
insert = true
"""


def test_minima_files_give_what_their_state_dicts_give(data, states, tmp_path):
    """Files the command line reads (a safetensors file, a .pt state dict under Lightning's
    "state_dict" key with its "model." prefix) are the same minima as the dicts in them."""
    train, _ = data
    schedule = tmp_path / "one.toml"
    schedule.write_text(TINY)
    save_file(states[0], str(tmp_path / "a.safetensors"))
    torch.save({"state_dict": {f"model.{k}": v for k, v in states[1].items()}}, tmp_path / "b.ckpt")
    runs = [nebtui.connect_minima(_model(), minima, train=train, schedule=schedule, strategy="batched", threads=1,
                           progress=False) for minima in (states[:2], [tmp_path / "a.safetensors", tmp_path / "b.ckpt"])]
    assert runs[0].saddles == runs[1].saddles and torch.equal(runs[0].minima, runs[1].minima)
    assert runs[1].names == ["a", "b"]
    _refusal(ValueError, "minimum 1: no such file", _model(), [states[0], tmp_path / "gone.safetensors"],
             train=train)


def test_prepare_runs_on_every_batch(data, states, tmp_path):
    """The digits' pixels stored as counts 0..16 and scaled back by ``prepare``: the same
    inputs as stored in [0, 1] (k / 16 is exact in float32), so the same path, bit for bit."""
    train, test = data
    schedule = tmp_path / "one.toml"
    schedule.write_text(TINY)
    counts = [(x * 16, y) for x, y in (train, test)]
    runs = [nebtui.connect_minima(_model(), states[:2], train=given[0], test=given[1], schedule=schedule,
                           strategy="batched", threads=1, progress=False, **options)
            for given, options in (((train, test), {}), (counts, {"prepare": lambda x: x / 16}))]
    assert runs[0].saddles == runs[1].saddles and runs[0].energies == runs[1].energies
    assert torch.equal(runs[0].paths[(0, 1)].pivots, runs[1].paths[(0, 1)].pivots)
    assert runs[0].test == runs[1].test


def test_a_callable_loss_is_saved_under_the_name_of_its_function(data, states, nebtui_home, tmp_path, monkeypatch):
    """A callable loss runs as given; save asks for its name as --loss takes it, vouches for
    it as for a factory, and the report imports it from the folder save was called in."""
    train, _ = data
    schedule = tmp_path / "one.toml"
    schedule.write_text(TINY)
    (tmp_path / "connect_api_loss.py").write_text(
        "import torch.nn.functional as F\n\n\ndef smooth(outputs, targets):\n"
        "    return F.cross_entropy(outputs, targets, label_smoothing=0.1)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from connect_api_loss import smooth

    connected = nebtui.connect_minima(_model(), states[:2], train=train, schedule=schedule, strategy="batched", threads=1,
                               loss=smooth, progress=False)
    assert set(connected.saddles) == {(0, 1)}
    with pytest.raises(ValueError, match="save needs the name of the loss function"):
        connected.save("callable", model="mlp", data="digits", model_args={"hidden": HIDDEN})
    with pytest.raises(ValueError, match="connect_minima ran the loss 'cross_entropy', not 'mse'"):
        nebtui.connect_minima(_model(), states[:2], train=train, schedule=schedule, progress=False).save(
            "named", model="mlp", data="digits", model_args={"hidden": HIDDEN}, loss="mse")
    path = connected.save("callable", model="mlp", data="digits", model_args={"hidden": HIDDEN},
                          loss="connect_api_loss:smooth")
    config = json.loads((path / "config.json").read_text())
    assert config["problem"]["loss"] == "connect_api_loss:smooth" and config["vouch"]
    report = in_process("report", "callable", "--format", "json", "--hessian-k", "0", "--slices", "0",
                        "--ensemble-k", "0", home=nebtui_home)
    assert report.returncode == 0, report.stderr
    document = json.loads((path / "results" / "report" / "report.json").read_text())
    assert [m["train"]["loss"] for m in document["minima"]] == pytest.approx(connected.energies, rel=5e-10)


def test_import_nebtui_stays_light():
    """torch is imported when connect_minima runs, not by ``import nebtui`` nor by naming connect_minima."""
    done = subprocess.run([sys.executable, "-c", "import sys, nebtui; print(callable(nebtui.connect_minima), "
                           "'torch' in sys.modules)"], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_a_model_factory_named_in_save_is_vouched_for_and_the_report_builds_it(run, nebtui_home, tmp_path,
                                                                                 monkeypatch):
    """The user named the factory in their own code, as if typed on the command line: the
    report imports it (from the folder save was called in) without nebtui sessions trust."""
    connected, _ = run
    (tmp_path / "connect_api_net.py").write_text(
        "from engine.networks.models import mlp\n\n\ndef make(classes=10):\n"
        f"    return mlp(hidden={tuple(HIDDEN)!r}, outputs=classes)\n")
    monkeypatch.chdir(tmp_path)
    path = connected.save("factory", model="connect_api_net:make", data="digits")
    config = json.loads((path / "config.json").read_text())
    assert config["vouch"] and config["problem"]["import_dir"] == str(tmp_path)
    report = in_process("report", "factory", "--format", "json", "--hessian-k", "0", "--slices", "0",
                        "--ensemble-k", "0", home=nebtui_home)
    assert report.returncode == 0, report.stderr
    document = json.loads((path / "results" / "report" / "report.json").read_text())
    assert [m["train"]["loss"] for m in document["minima"]] == pytest.approx(connected.energies, rel=5e-10)
