"""Schedules: presets, one message per bad field, round trips, transformations."""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.paths.schedule import (
    OPTIMISER_ARGS,
    UNSUPPORTED_OPTIMISERS,
    BandOptions,
    Cycle,
    Schedule,
    ScheduleError,
    load_schedule,
    preset_names,
    schedule_from_dict,
)

MINIMAL_TOML = """\
[band]
initial_pivots = 2
max_pivots = 10

[[phase]]
steps = 50
lr = 0.5
"""


def write(tmp_path: Path, text: str, name: str = "schedule.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_lines(excinfo: pytest.ExceptionInfo[ScheduleError]) -> list[str]:
    return str(excinfo.value).splitlines()


# -- presets -------------------------------------------------------------------


def test_preset_names() -> None:
    assert preset_names() == ["paper", "reference", "surface"]


def test_paper_preset_numbers() -> None:
    schedule = load_schedule("paper")
    assert schedule.name == "paper"
    assert len(schedule.cycles) == 14
    assert schedule.total_steps == 4 * 1000 + 2 * 2000 + 4 * 1000 + 4 * 1000 == 16000
    assert [c.steps for c in schedule.cycles] == [1000] * 4 + [2000] * 2 + [1000] * 8
    assert [c.lr for c in schedule.cycles] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    assert [c.insert for c in schedule.cycles] == [True] * 4 + [False] * 2 + [True] * 8
    assert all(c.max_insert is None for c in schedule.cycles)
    assert all(c.optimiser == "SGD" and c.optimiser_args == {"momentum": 0.9} for c in schedule.cycles)
    assert all(c.batch_size == 512 and not c.climb for c in schedule.cycles)
    assert schedule.band == BandOptions(
        initial_pivots=3, max_pivots=64, tangent="paper", spring=math.inf, spacing="equal",
        insertion_rule="threshold", insertion_threshold=0.2, insertion_scale="dense", dense_points=9,
        weight_decay=1e-4, reset_optimiser=False, select="last",
    )
    assert schedule.pivot_bound == 64  # uncapped insertion: only max_pivots bounds it


def test_reference_preset_numbers() -> None:
    schedule = load_schedule("reference")
    assert len(schedule.cycles) == 14 and schedule.total_steps == 16000
    assert [c.steps for c in schedule.cycles] == [1000] * 4 + [2000] * 2 + [1000] * 8
    assert [c.lr for c in schedule.cycles] == [0.1] * 6 + [0.01] * 4 + [0.001] * 4
    assert all(c.insert for c in schedule.cycles)  # the 2000-step cycles insert too
    assert [c.max_insert for c in schedule.cycles[1:]] == [2] * 13
    assert schedule.band == BandOptions(
        initial_pivots=3, max_pivots=31, tangent="reference", spring=math.inf, spacing="fractions", respace="before",
        insertion_rule="highest", insertion_threshold=0.1, insertion_scale="pivots", dense_points=9,
        weight_decay=1e-4, reset_optimiser=True, select="lowest",
    )
    # 2 ends + 3 filled in cycle 1 + 2 in each of the 13 later cycles
    assert 2 + schedule.band.initial_pivots + sum(c.max_insert for c in schedule.cycles[1:]) == 31
    assert schedule.pivot_bound == 31 == schedule.band.max_pivots


def test_preset_file_can_be_loaded_by_path() -> None:
    path = Path(__file__).parents[2] / "engine" / "paths" / "presets" / "paper.toml"
    assert load_schedule(path) == load_schedule("paper")


# -- one message per bad field -------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": -5}, "Cycle: steps must be a positive integer, got -5"),
        ({"steps": 0}, "Cycle: steps must be a positive integer, got 0"),
        ({"steps": 2.5}, "Cycle: steps must be a positive integer, got 2.5"),
        ({"steps": True}, "Cycle: steps must be a positive integer, got True"),
        ({"lr": 0.0}, "Cycle: lr must be a finite number > 0, got 0.0"),
        ({"lr": -0.1}, "Cycle: lr must be a finite number > 0, got -0.1"),
        ({"lr": math.inf}, "Cycle: lr must be a finite number > 0, got inf"),
        ({"lr": math.nan}, "Cycle: lr must be a finite number > 0, got nan"),
        ({"optimiser": "Adamm"}, "Cycle: optimiser must name a torch.optim optimiser class, got 'Adamm' "
                                 "(did you mean 'Adam'"),
        ({"optimiser": "sgd"}, "(did you mean 'SGD'?)"),
        ({"optimiser": "Optimizer"}, "Cycle: optimiser must name a torch.optim optimiser class, got 'Optimizer'"),
        ({"optimiser_args": {"momentm": 0.9}}, "Cycle: optimiser_args: SGD does not accept 'momentm' "
                                               "(did you mean 'momentum'?); accepted: momentum, dampening"),
        ({"optimiser_args": {"lr": 0.3}}, "Cycle: optimiser_args must not set lr: use the cycle's lr"),
        ({"optimiser_args": {"momentum": -1.0}}, "Cycle: optimiser_args rejected by torch.optim.SGD: "
                                                 "Invalid momentum value: -1.0"),
        ({"optimiser": "Adam", "optimiser_args": {"momentum": 0.9}}, "Adam does not accept 'momentum'"),
        ({"batch_size": 0}, "Cycle: batch_size must be an integer >= 1, got 0"),
        ({"max_insert": -1}, "Cycle: max_insert must be an integer >= 0, got -1"),
        ({"insert": "yes"}, "Cycle: insert must be true or false, got 'yes'"),
    ],
)
def test_bad_cycle_field_message(changes: dict, message: str) -> None:
    values = {"steps": 10, "lr": 0.1, **changes}
    with pytest.raises(ScheduleError) as excinfo:
        Cycle(**values)
    assert len(error_lines(excinfo)) == 1
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"initial_pivots": 0}, "BandOptions: initial_pivots must be an integer >= 1 "
                                "(zero pivots leave nothing to optimise), got 0"),
        ({"initial_pivots": 5, "max_pivots": 6}, "BandOptions: max_pivots must be an integer >= "
                                                 "initial_pivots + 2 = 7 (the ends count), got 6"),
        ({"tangent": "papr"}, "BandOptions: tangent must be one of 'paper', 'improved', 'reference', "
                              "got 'papr' (did you mean 'paper'?)"),
        ({"spacing": "even"}, "BandOptions: spacing must be one of 'equal', 'fractions', got 'even'"),
        ({"insertion_rule": "highst"}, "insertion_rule must be one of 'threshold', 'highest', got 'highst' "
                                       "(did you mean 'highest'?)"),
        ({"insertion_scale": "path"}, "insertion_scale must be one of 'dense', 'pivots', got 'path'"),
        ({"select": "best"}, "select must be one of 'last', 'lowest', got 'best'"),
        ({"insertion_threshold": 0.0}, "BandOptions: insertion_threshold must be in (0, 1], got 0.0"),
        ({"insertion_threshold": 1.5}, "BandOptions: insertion_threshold must be in (0, 1], got 1.5"),
        ({"spring": 0}, "BandOptions: spring must be a number > 0 or inf, got 0"),
        ({"spring": -2.0}, "BandOptions: spring must be a number > 0 or inf, got -2.0"),
        ({"dense_points": 0}, "BandOptions: dense_points must be an integer >= 1, got 0"),
        ({"weight_decay": -1e-4}, "BandOptions: weight_decay must be a finite number >= 0, got -0.0001"),
        ({"restarts": 0}, "BandOptions: restarts must be an integer >= 1, got 0"),
        ({"restart_noise": -0.5}, "BandOptions: restart_noise must be a finite number >= 0, got -0.5"),
        ({"energy_every": 0}, "BandOptions: energy_every must be an integer >= 1, got 0"),
        ({"reset_optimiser": 1}, "BandOptions: reset_optimiser must be true or false, got 1"),
    ],
)
def test_bad_band_field_message(changes: dict, message: str) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        BandOptions(**changes)
    assert len(error_lines(excinfo)) == 1
    assert message in str(excinfo.value)


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Cycle(steps=0, lr=0.1)


def test_spring_accepts_inf_number_and_string() -> None:
    assert BandOptions(spring="inf").spring == math.inf
    assert BandOptions(spring=2).spring == 2.0 and isinstance(BandOptions(spring=2).spring, float)
    text = MINIMAL_TOML.replace("[band]", '[band]\nspring = "inf"')
    assert schedule_from_dict(__import__("tomllib").loads(text)).band.spring == math.inf


def test_schedule_needs_cycles_and_an_inserting_first_cycle() -> None:
    with pytest.raises(ScheduleError, match=r"^Schedule: cycles: a schedule needs at least one cycle, got none$"):
        Schedule(cycles=())
    with pytest.raises(ScheduleError, match=r"^Schedule: cycle 1: insert must be true \(it fills initial_pivots"):
        Schedule(cycles=(Cycle(steps=10, lr=0.1, insert=False),))
    with pytest.raises(ScheduleError, match=r"^Schedule: cycle 2: must be a Cycle, got dict$"):
        Schedule(cycles=(Cycle(steps=10, lr=0.1), {"steps": 10}))


def test_several_bad_fields_are_all_reported() -> None:
    with pytest.raises(ScheduleError) as excinfo:
        Cycle(steps=-5, lr=-1.0, optimiser="SDG", batch_size=0)
    assert error_lines(excinfo) == [
        "Cycle: steps must be a positive integer, got -5",
        "Cycle: lr must be a finite number > 0, got -1.0",
        "Cycle: batch_size must be an integer >= 1, got 0",
        "Cycle: optimiser must name a torch.optim optimiser class, got 'SDG' (did you mean 'SGD'?)",
    ]


def test_several_bad_fields_in_a_file_name_file_phase_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name = "broken"

[band]
initial_pivots = 0
tangent = "papr"
spring = -1.0

[[phase]]
steps = 100
lr = 0.1

[[phase]]
steps = -5
lr = 0.1
optimiser = "SDG"
repeat = 0

[[phase]]
lr = 0.1
stpes = 100
""")
    with pytest.raises(ScheduleError) as excinfo:
        load_schedule(path)
    lines = error_lines(excinfo)
    where = str(path)
    assert lines == [
        f"{where}: band: initial_pivots must be an integer >= 1 (zero pivots leave nothing to optimise), got 0",
        f"{where}: band: tangent must be one of 'paper', 'improved', 'reference', got 'papr' (did you mean 'paper'?)",
        f"{where}: band: spring must be a number > 0 or inf, got -1.0",
        f"{where}: phase 2: repeat must be an integer >= 1, got 0",
        f"{where}: phase 2: steps must be a positive integer, got -5",
        f"{where}: phase 2: optimiser must name a torch.optim optimiser class, got 'SDG' (did you mean 'SGD'?)",
        f"{where}: phase 3: unknown key 'stpes' in [[phase]] (did you mean 'steps'?); known keys: steps, lr, "
        "optimiser, optimiser_args, batch_size, insert, max_insert, climb, repeat",
        f"{where}: phase 3: steps is missing (a positive integer)",
    ]


def test_unknown_keys_are_suggested(tmp_path: Path) -> None:
    text = "nme = 'x'\n" + MINIMAL_TOML.replace("[band]", "[band]\ntangnet = 'paper'")
    text = text.replace("[[phase]]", "[[phases]]\nsteps = 1\nlr = 0.1\n\n[[phase]]")
    with pytest.raises(ScheduleError) as excinfo:
        load_schedule(write(tmp_path, text, "typo.toml"))
    lines = error_lines(excinfo)
    assert len(lines) == 3
    assert lines[0].startswith(f"{tmp_path / 'typo.toml'}: unknown key 'nme' in the top level (did you mean 'name'?)")
    assert lines[1].startswith(f"{tmp_path / 'typo.toml'}: unknown key 'phases' in the top level "
                               "(did you mean 'phase'?)")
    assert lines[2].startswith(f"{tmp_path / 'typo.toml'}: band: unknown key 'tangnet' in [band] "
                               "(did you mean 'tangent'?)")


def test_no_phases_and_a_first_phase_without_insertion(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match=r"^empty\.toml: no \[\[phase\]\] tables: a schedule needs at least one"):
        schedule_from_dict({"band": {}}, source="empty.toml")
    with pytest.raises(ScheduleError, match=r"^s: phase 1: insert must be true in the first cycle"):
        schedule_from_dict({"phase": [{"steps": 1, "lr": 0.1, "insert": False}]}, source="s")


# -- files ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ScheduleError) as excinfo:
        load_schedule(path)
    assert str(excinfo.value) == f"{path}: no such schedule file (presets: paper, reference, surface)"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError) as excinfo:  # a folder stands for any file that cannot be read
        load_schedule(tmp_path)
    assert str(excinfo.value).startswith(f"{tmp_path}: cannot read the schedule file: ")
    assert len(error_lines(excinfo)) == 1
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('name = "\xe9"\n'.encode("latin-1"))
    with pytest.raises(ScheduleError, match=r"latin1\.toml: cannot read the schedule file: not UTF-8 text"):
        load_schedule(latin1)


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[band]\ninitial_pivots = 3\ntangent = paper\n")
    with pytest.raises(ScheduleError) as excinfo:
        load_schedule(path)
    assert len(error_lines(excinfo)) == 1
    assert str(excinfo.value).startswith(f"{path}: invalid TOML: ")
    assert "line 3" in str(excinfo.value)


def test_minimal_file_uses_defaults_and_file_stem_as_name(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, MINIMAL_TOML, "quick.toml"))
    assert schedule == Schedule(
        cycles=(Cycle(steps=50, lr=0.5),), band=BandOptions(initial_pivots=2, max_pivots=10), name="quick"
    )
    assert isinstance(schedule.cycles[0].lr, float)


# -- round trips -----------------------------------------------------------------


def custom_schedule() -> Schedule:
    return Schedule(
        cycles=(
            Cycle(steps=7, lr=0.3, optimiser="Adam", optimiser_args={"betas": [0.8, 0.9], "eps": 1e-7}),
            Cycle(steps=7, lr=0.3, optimiser="Adam", optimiser_args={"betas": [0.8, 0.9], "eps": 1e-7}),
            Cycle(steps=3, lr=0.01, insert=False, climb=True, batch_size=16),
            Cycle(steps=5, lr=0.02, max_insert=0),
        ),
        band=BandOptions(spring=2.5, tangent="improved", restarts=3, restart_noise=0.05, energy_every=1),
        name='odd "name"\twith escapes \u00e9',
    )


def test_a_file_reads_as_the_schedule_built_in_python(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name = 'odd "name"\twith escapes \u00e9'

[band]
spring = 2.5
tangent = "improved"
restarts = 3
restart_noise = 0.05
energy_every = 1

[[phase]]
repeat = 2
steps = 7
lr = 0.3
optimiser = "Adam"
optimiser_args = { betas = [0.8, 0.9], eps = 1e-7 }

[[phase]]
steps = 3
lr = 0.01
insert = false
climb = true
batch_size = 16

[[phase]]
steps = 5
lr = 0.02
max_insert = 0
""")
    assert load_schedule(path) == custom_schedule()


@pytest.mark.parametrize("make", [lambda: load_schedule("paper"), lambda: load_schedule("reference"), custom_schedule])
def test_dict_round_trip_through_json(make) -> None:
    schedule = make()
    as_json = json.dumps(schedule.to_dict(), allow_nan=False)  # inf must travel as "inf"
    assert schedule_from_dict(json.loads(as_json)) == schedule


def test_to_dict_merges_identical_cycles_into_phases() -> None:
    d = load_schedule("paper").to_dict()
    assert [(p["repeat"], p["steps"], p["lr"], p["insert"]) for p in d["phase"]] == [
        (4, 1000, 0.1, True), (2, 2000, 0.1, False), (4, 1000, 0.01, True), (4, 1000, 0.001, True),
    ]
    assert d["band"]["spring"] == "inf"
    assert d["name"] == "paper"


# -- transformations -------------------------------------------------------------


def test_scaled() -> None:
    paper = load_schedule("paper")
    demo = paper.scaled(0.01)
    assert [c.steps for c in demo.cycles] == [10] * 4 + [20] * 2 + [10] * 8
    assert demo.total_steps == 160
    assert [c.steps for c in paper.scaled(1e-6).cycles] == [1] * 14  # at least one step each
    assert paper.scaled(2).total_steps == 32000
    assert [c.lr for c in demo.cycles] == [c.lr for c in paper.cycles]
    assert paper.total_steps == 16000  # the original is unchanged
    with pytest.raises(ScheduleError, match=r"^scaled: factor must be a finite number > 0, got 0$"):
        paper.scaled(0)


def test_with_lr_scale() -> None:
    scaled = load_schedule("reference").with_lr_scale(0.5)
    assert [c.lr for c in scaled.cycles] == pytest.approx([0.05] * 6 + [0.005] * 4 + [0.0005] * 4)
    assert scaled.total_steps == 16000
    with pytest.raises(ScheduleError, match=r"^with_lr_scale: factor must be a finite number > 0, got -1$"):
        scaled.with_lr_scale(-1)


def test_replace_band_and_cycles_validate() -> None:
    paper = load_schedule("paper")
    wider = paper.replace_band(max_pivots=20, restarts=2)
    assert (wider.band.max_pivots, wider.band.restarts, wider.band.tangent) == (20, 2, "paper")
    assert wider.cycles == paper.cycles
    assert paper.replace_cycles(batch_size=64).cycles[5].batch_size == 64
    with pytest.raises(ScheduleError, match=r"^BandOptions: max_pivots must be an integer >= initial_pivots \+ 2"):
        paper.replace_band(max_pivots=4)
    with pytest.raises(ScheduleError, match=r"^replace_band: unknown field 'tangnet' \(did you mean 'tangent'\?\)$"):
        paper.replace_band(tangnet="improved")
    with pytest.raises(ScheduleError, match=r"^Cycle: batch_size must be an integer >= 1, got 0$"):
        paper.replace_cycles(batch_size=0)


def test_cycles_given_as_a_list_become_a_tuple() -> None:
    schedule = Schedule(cycles=[Cycle(steps=3, lr=0.1)])  # type: ignore[arg-type]
    assert schedule.cycles == (Cycle(steps=3, lr=0.1),)
    assert schedule.total_steps == 3


def test_surface_preset_and_climbing_in_the_final_phase() -> None:
    surface = load_schedule("surface")
    assert max(c.lr for c in surface.cycles) < 1e-3  # stable on gradients in the hundreds
    climbing = surface.with_climbing()
    assert [c.climb for c in climbing.cycles] == [False] * 8 + [True] * 4
    assert [c.climb for c in surface.with_climbing(1).cycles][-2:] == [False, True]
    with pytest.raises(ScheduleError, match="last must be an integer in 1..12"):
        surface.with_climbing(0)


def test_optimisers_that_cannot_step_a_band_are_refused() -> None:
    with pytest.raises(ScheduleError, match="LBFGS cannot drive a band: it re-evaluates the loss through a closure"):
        Cycle(steps=1, lr=0.1, optimiser="LBFGS")


@pytest.mark.parametrize(
    ("optimiser", "reason"),
    [("Muon", "it only takes 2-D weight matrices"), ("SparseAdam", "it only takes sparse gradients")],
)
def test_other_optimisers_that_cannot_step_a_band_are_refused(optimiser: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=f"^Cycle: optimiser {optimiser} cannot drive a band: {reason}"):
        Cycle(steps=1, lr=0.1, optimiser=optimiser)


def test_an_unknown_optimiser_without_a_near_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ScheduleError) as excinfo:
        Cycle(steps=1, lr=0.1, optimiser="Optimizer")
    assert str(excinfo.value).endswith("; allowed: " + ", ".join(OPTIMISER_ARGS))


# -- the optimiser declaration agrees with torch.optim ---------------------------


def test_declared_optimisers_and_arguments_exist_in_torch() -> None:
    torch = pytest.importorskip("torch")
    classes = {name for name, obj in vars(torch.optim).items()
               if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer}
    assert set(OPTIMISER_ARGS) | set(UNSUPPORTED_OPTIMISERS) == classes
    for name, args in OPTIMISER_ARGS.items():
        parameters = inspect.signature(getattr(torch.optim, name).__init__).parameters
        assert set(args) <= set(parameters), name


@pytest.mark.parametrize(
    ("optimiser", "args", "valid"),
    [
        ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, True),
        ("SGD", {"momentum": -1.0}, False),
        ("SGD", {"weight_decay": -1.0}, False),
        ("SGD", {"nesterov": True}, False),  # nesterov without momentum
        ("Adam", {"betas": [0.8, 0.9], "eps": 1e-7, "amsgrad": True}, True),
        ("Adam", {"betas": [1.0, 0.9]}, False),
        ("AdamW", {"eps": -1.0}, False),
        ("Adadelta", {"rho": 1.5}, False),
        ("RMSprop", {"alpha": -0.1}, False),
        ("Rprop", {"etas": [0.5, 1.2], "step_sizes": [1e-6, 50]}, True),
        ("Rprop", {"etas": [1.2, 0.5]}, False),
        ("NAdam", {"momentum_decay": -1.0}, False),
    ],
)
def test_declared_argument_values_agree_with_torch(optimiser: str, args: dict, valid: bool) -> None:
    torch = pytest.importorskip("torch")
    try:
        getattr(torch.optim, optimiser)([torch.zeros(2, 2, requires_grad=True)], lr=0.1, **args)
        torch_accepts = True
    except ValueError:
        torch_accepts = False
    assert torch_accepts is valid
    if valid:
        Cycle(steps=1, lr=0.1, optimiser=optimiser, optimiser_args=args)
    else:
        with pytest.raises(ScheduleError, match=rf"^Cycle: optimiser_args rejected by torch\.optim\.{optimiser}: "):
            Cycle(steps=1, lr=0.1, optimiser=optimiser, optimiser_args=args)


# -- no torch ----------------------------------------------------------------------


def test_loading_schedules_does_not_import_torch() -> None:
    code = ("import sys, engine.paths.schedule as s\n"
            "for name in s.preset_names(): s.load_schedule(name).with_climbing().scaled(0.5).to_dict()\n"
            "s.Cycle(steps=1, lr=0.1, optimiser='Adam', optimiser_args={'betas': [0.8, 0.9]})\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
