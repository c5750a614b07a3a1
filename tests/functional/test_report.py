"""nebtui report on real sessions made with the CLI (Mueller-Brown and a digits
network): every format, the JSON's structure, Table 1 against values recomputed here from
the paths' states and the energy, the ensemble, byte-identical JSON, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from cli_runs import copy_session, in_process, nebtui

DIGITS_REPORT = ("--hessian-dense-limit", "500", "--hessian-batch", "64", "--slice-grid", "7")  # Lanczos on a small batch, a small slice: fast


@pytest.fixture(scope="module")
def home(tmp_path_factory, mb_session, digits_session):
    """A data home with copies of the shared finished sessions: mb (Mueller-Brown) and dg (digits)."""
    home = tmp_path_factory.mktemp("report-home")
    copy_session(mb_session, home, "mb")
    copy_session(digits_session, home, "dg")
    return home


@pytest.fixture(scope="module")
def reports(home):
    """Both sessions reported in every format into the default folder: the digits one by the
    installed script, the Mueller-Brown one in this process (the script's start is the same)."""
    done = nebtui(home, "report", "dg", *DIGITS_REPORT)
    assert done.returncode == 0, done.stderr
    done = in_process("report", "mb", home=home)
    assert done.returncode == 0, done.stderr
    return {s: home / s / "results" / "report" for s in ("mb", "dg")}


def document(reports, session):
    return json.loads((reports[session] / "report.json").read_text())


@pytest.mark.timeout(600)
@pytest.mark.parametrize("session", ["mb", "dg"])
def test_every_format_is_written(reports, session):
    folder = reports[session]
    for name in ("report.json", "report.md", "report.html", "minima.csv", "paths.csv", "profiles.csv", "table1.csv"):
        assert (folder / name).stat().st_size > 0, name
    markdown = (folder / "report.md").read_text()
    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)
    assert linked and all((folder / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for link in linked)
    page = (folder / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(linked) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http" not in page.replace("http-equiv", "")  # readable offline: nothing fetched
    paths_csv = (folder / "paths.csv").read_text().splitlines()
    assert paths_csv[0].startswith("a,b,in_mst,pivots,saddle_position") and len(paths_csv) == 1 + 3
    expected = {"mb": {"surface.png", "mst.png", "disconnectivity.png", "hessian.png"},
                "dg": {"slice-1-2.png", "first-passage.png", "hessian.png", "mst.png"}}[session]
    assert expected <= {Path(link).name for link in linked}


METRIC = {"loss", "error", "split", "bn_recalibrated"}
TOP = {"schema_version", "session", "minima", "paths", "mst", "bounds", "table1", "first_passage", "timing",
       "analysis", "hessian", "slices", "ensembles"}


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_json_has_its_structure(reports):
    for session, kind in (("mb", "surface"), ("dg", "network")):
        data = document(reports, session)
        assert set(data) == TOP and data["schema_version"] == 1
        assert data["session"]["kind"] == kind and data["session"]["lifecycle"] == "finished"
        count = len(data["minima"])
        assert [m["id"] for m in data["minima"]] == list(range(count))
        for minimum in data["minima"]:
            assert set(minimum["train"]) == METRIC and minimum["train"]["split"] == "train"
            assert number(minimum["train"]["loss"])
            if kind == "surface":
                assert minimum["test"] is None and len(minimum["position"]) == 2
            else:
                assert set(minimum["test"]) == METRIC and minimum["test"]["split"] == "test"
                assert number(minimum["test"]["error"]) and "position" not in minimum
        for path in data["paths"]:
            assert 0 <= path["a"] < path["b"] < count and path["pivots"] >= 2
            for saddle in (path["saddle"], path["linear_saddle"]):
                assert 0 <= saddle["position"] <= 1 and set(saddle["train"]) == METRIC
            profile = path["profile"]
            assert len(profile["positions"]) == len(profile["train"]["losses"])
            assert (profile["test"] is None) == (kind == "surface" or not path["in_mst"])
            assert path["history"] and all(h["split"] == "train" and number(h["saddle_energy"]) for h in path["history"])
        # a finished session's MST spans every minimum; the bounds come from it
        assert len(data["mst"]) == count - 1
        bounds = data["bounds"]
        assert [len(row) for row in bounds] == [count] * count
        assert all(bounds[i][i] == 0 and bounds[i][j] == bounds[j][i] for i in range(count) for j in range(count))
        for edge in data["mst"]:
            assert bounds[edge["a"]][edge["b"]] == edge["saddle_energy"]
        table = data["table1"]
        assert number(table["train_loss_minima"]) and number(table["train_loss_saddles"])
        tested = [table[k] for k in ("test_loss_minima", "test_loss_saddles", "test_error_minima", "test_error_saddles")]
        assert all(v is None for v in tested) if kind == "surface" else all(number(v) for v in tested)
        assert table["minima"] == count and table["saddles"] == count - 1
        assert set(data["timing"]) == {"devices", "started", "last_event", "seconds", "pairs"}
        assert {p["kind"] for p in data["hessian"]["points"]} == {"minimum", "saddle"}
        assert all(p["method"] in ("dense", "lanczos") for p in data["hessian"]["points"])


def _connections(home, session):
    from engine.paths.autoneb import Connection
    from sessions.disk.config import read_config
    from sessions.disk.folder import SessionFolder
    from sessions.problem.build import build
    from sessions.disk.statepack import unpack_state

    folder = SessionFolder.open(home, session)
    config = read_config(folder)
    built = build(config, "cpu")
    schedule = config.schedule
    results = {}
    for path in (folder.results_path / "paths").glob("*.safetensors"):
        connection = Connection.from_state(built.energy, schedule, unpack_state(path.read_bytes()))
        results[connection.pair] = connection.result
    # the MST as the session announced it in its log, not as the report computes it
    log = [json.loads(line) for line in folder.events_path.read_text().splitlines()]
    mst = [(int(a), int(b)) for a, b, _ in next(e for e in log if e["kind"] == "session_finished")["mst"]]
    return config, built, results, mst


def test_mueller_brown_table1_and_saddles_match_the_surface(home, reports):
    from engine.energy.surfaces import MuellerBrown

    _, built, results, mst = _connections(home, "mb")
    surface = MuellerBrown()
    data = document(reports, "mb")
    minima = [float(v) for v in surface.potential(built.minima)]
    saddles = [float(surface.potential(results[p].saddle_point.unsqueeze(0))[0]) for p in mst]
    table = data["table1"]
    assert table["train_loss_minima"] == pytest.approx(sum(minima) / 3, rel=1e-9)
    assert table["train_loss_saddles"] == pytest.approx(sum(saddles) / 2, rel=1e-9)
    assert table["test_loss_minima"] is None and table["factor"] is None  # a surface has no test set
    assert sorted(saddles) == pytest.approx([-72.2489, -40.6648], abs=0.1)
    assert [(e["a"], e["b"]) for e in data["mst"]] == mst
    saddle = next(p for p in data["paths"] if (p["a"], p["b"]) == mst[0])["saddle"]
    assert saddle["point"] == pytest.approx(results[mst[0]].saddle_point.tolist(), abs=1e-9)
    assert saddle["test"] is None and saddle["train"]["split"] == "train"
    # the surface's picture: grid values are the surface's
    picture = data["slices"][0]
    j, i = 17, 40
    point = torch.tensor([[picture["xs"][i], picture["ys"][j]]], dtype=torch.float64)
    assert picture["losses"][j][i] == pytest.approx(float(surface.potential(point)[0]), rel=1e-9)
    # Hessian at the saddles: one negative eigenvalue each, none at the minima
    negatives = {h["kind"]: set() for h in data["hessian"]["points"]}
    for h in data["hessian"]["points"]:
        negatives[h["kind"]].add(h["negative"])
    assert negatives == {"minimum": {0}, "saddle": {1}}


def test_digits_table1_matches_values_recomputed_from_the_states(home, reports):
    from sessions.problem.build import load_data

    config, built, results, mst = _connections(home, "dg")
    data = load_data(config.problem, "cpu")
    energy = built.energy

    def mean(points, split, which):
        loss, error = energy.metrics(points, *data[split])
        return float((loss if which == "loss" else error).double().mean())

    saddles = torch.stack([results[p].saddle_point for p in mst])
    table = document(reports, "dg")["table1"]
    expected = {
        "train_loss_minima": mean(built.minima, "train", "loss"),
        "train_loss_saddles": mean(saddles, "train", "loss"),
        "test_loss_minima": mean(built.minima, "test", "loss"),
        "test_loss_saddles": mean(saddles, "test", "loss"),
        "test_error_minima": mean(built.minima, "test", "error"),
        "test_error_saddles": mean(saddles, "test", "error"),
    }
    for key, value in expected.items():
        assert table[key] == pytest.approx(value, rel=1e-6), key
    assert table["factor"] == pytest.approx(expected["train_loss_saddles"] / expected["train_loss_minima"], rel=1e-6)
    assert table["test_error_difference"] == pytest.approx(
        expected["test_error_saddles"] - expected["test_error_minima"], abs=1e-9)
    # the path's saddle is far below the linear segment's (the paper's claim), and below ln 10
    for path in document(reports, "dg")["paths"]:
        assert path["saddle"]["train"]["loss"] < path["linear_saddle"]["train"]["loss"]
        assert path["saddle"]["train"]["loss"] < 0.1 * 2.302585
    table_row = (reports["dg"] / "table1.csv").read_text().splitlines()
    assert table_row[0].startswith("train_loss_minima,train_loss_saddles,factor")
    assert float(table_row[1].split(",")[0]) == pytest.approx(expected["train_loss_minima"], rel=1e-6)


def test_digits_ensemble_matches_softmax_averages_made_here(home, reports):
    from engine.band.geometry import points_at
    from engine.networks.layout import ParameterLayout
    from sessions.problem.build import build_model, load_data

    config, _, results, mst = _connections(home, "dg")
    x, y = load_data(config.problem, "cpu")["test"]
    model = build_model(config.problem).eval()
    layout = ParameterLayout.from_module(model)
    ensembles = {tuple(e["pair"]): e for e in document(reports, "dg")["ensembles"]}
    assert set(ensembles) == set(mst)
    pair = mst[0]
    members = points_at(results[pair].pivots, torch.linspace(0, 1, 5, dtype=torch.float64))

    def softmax(theta):
        layout.load_into(model, theta)
        with torch.no_grad():
            return torch.softmax(model(x).double(), dim=1)

    probabilities = [softmax(theta) for theta in members]
    accuracy = lambda p: float((p.argmax(dim=1) == y).double().mean())  # noqa: E731
    found = ensembles[pair]
    assert found["split"] == "test" and found["members"] == 5
    assert found["path"] == pytest.approx(accuracy(torch.stack(probabilities).mean(dim=0)), abs=1e-9)
    assert found["start"] == pytest.approx(accuracy(probabilities[0]), abs=1e-9)
    assert found["pair_ensemble"] == pytest.approx(accuracy((probabilities[0] + probabilities[-1]) / 2), abs=1e-9)
    assert found["path"] > 0.9  # digits minima reach about 97 %


@pytest.mark.timeout(600)
def test_a_second_report_is_byte_identical(home, reports, tmp_path):
    for session, extra in (("mb", ()), ("dg", DIGITS_REPORT)):
        done = in_process("report", session, "--format", "json", "--out", str(tmp_path / session), *extra, home=home)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / session / "report.json").read_bytes() == (reports[session] / "report.json").read_bytes()
        assert sorted(p.name for p in (tmp_path / session).iterdir()) == ["report.json"]


def test_the_aligned_straight_line_joins_the_minima_an_aligned_session_connects(home, reports):
    """Every minimum weight-matched to the lowest (what --align connects), not b matched to a:
    recomputed here from the files with the alignment itself, for every pair."""
    from engine.alignment.weight_matching import align
    from engine.band.geometry import linear_path

    config, built, _, _ = _connections(home, "dg")
    data = document(reports, "dg")
    lowest = min(range(len(data["minima"])), key=lambda i: data["minima"][i]["train"]["loss"])
    assert data["session"]["line_alignment"]["reference"] == lowest
    minima = built.minima  # (M, D), as the files hold them (dg did not align)
    aligned = [m if i == lowest else align(built.model, minima[lowest], m, seed=config.seed).params
               for i, m in enumerate(minima)]
    assert any(lowest not in (p["a"], p["b"]) for p in data["paths"])  # a pair the two alignments tell apart
    for path in data["paths"]:
        a, b, line = path["a"], path["b"], path["lines"]["aligned"]
        losses = built.energy.evaluate(linear_path(aligned[a], aligned[b], len(line["losses"])))
        # the same float32 evaluation as the report's; the JSON keeps SIGNIFICANT digits
        assert line["losses"] == pytest.approx(losses.tolist(), rel=1e-6), (a, b)
        assert line["reference"] == lowest
        assert line["distance_after"] == pytest.approx((aligned[a] - aligned[b]).double().norm().item(), rel=1e-6)
    text = (reports["dg"] / "report.md").read_text()
    assert f"and between the minima after weight matching every one to minimum {lowest}, the lowest" in text
    assert f"| straight line (aligned to minimum {lowest}) saddle train |" in text


def test_errors_are_one_clear_line(home, reports, tmp_path):
    from sessions.disk.folder import SessionFolder

    config = json.loads((home / "mb" / "config.json").read_text())
    SessionFolder.create(home, "empty", config)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cases = [
        (("report", "nowhere"), "no session 'nowhere'", 1),
        (("report", "empty"), "session empty has no finished path yet", 1),
        (("report", "mb", "--out", str(blocker / "inside")), "cannot write the report to", 2),
        (("report", "mb", "--format", "pdf"), "unknown format 'pdf'", 2),
        (("report", "mb", "--ensemble-k", "1"), "--ensemble-k must be 0", 2),
    ]
    for args, message, code in cases:
        done = in_process(*args, home=home)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_mst_saddles_are_written_as_networks_that_score_what_the_report_says(home, reports, tmp_path):
    from safetensors import safe_open

    from engine.networks.data import digits
    from engine.networks.models import mlp

    done = in_process("report", "dg", "--format", "weights", "--out", str(tmp_path), "--hessian-k", "0", "--slices", "0",
                      "--ensemble-k", "0", home=home)  # only what the weights need
    assert done.returncode == 0, done.stderr
    report = document(reports, "dg")
    files = sorted((tmp_path / "weights").glob("*.safetensors"))
    assert [f.name for f in files] == sorted(f"saddle-{e['a']}-{e['b']}.safetensors" for e in report["mst"])
    train = digits().train
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            about = json.loads(handle.metadata()["nebtui"])
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        path = next(p for p in report["paths"] if [p["a"], p["b"]] == about["pair"])
        assert about["model"] == "mlp" and about["data"] == "digits" and about["train"]["split"] == "train"
        assert about["train"]["loss"] == pytest.approx(path["saddle"]["train"]["loss"], rel=1e-6)  # the JSON rounds
        network = mlp()
        network.load_state_dict(state)  # strict: every parameter and buffer, nothing else
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(network.eval()(train.inputs), train.targets).item()
        assert loss == pytest.approx(path["saddle"]["train"]["loss"], rel=1e-5)

    surface = in_process("report", "mb", "--format", "weights", "--out", str(tmp_path / "mb"), home=home)
    assert surface.returncode == 0 and "explores a surface, not networks" in surface.stderr


def test_the_report_says_what_was_computed_and_for_which_pairs(reports):
    mb, dg = ((reports[s] / "report.md").read_text() for s in ("mb", "dg"))
    header = next(line for line in mb.splitlines() if line.startswith("| pair |"))
    assert "linear saddle train" not in header and header.count("straight line (files) saddle train") == 1
    assert "the surface's energy at each point" in mb and "full sets" not in mb  # a surface has no data
    assert "*Hessian extreme eigenvalues, from the whole spectrum (dense), and the curvature" in mb
    assert "Lanczos" not in mb
    assert "*Hessian extreme eigenvalues, by Lanczos on Hessian-vector products, and the curvature" in dg
    [outside] = [p for p in document(reports, "dg")["paths"] if not p["in_mst"]]
    assert (f"Largest test error %: evaluated along the MST's paths only; {outside['a']} - {outside['b']} is "
            "outside the MST, so it is '-' there.") in dg


def test_the_comparison_figure_says_whose_mst_it_shows(home, tmp_path):
    compared = tmp_path / "home"
    copy_session(home / "mb", compared, "mb")
    again = copy_session(home / "mb", compared, "again")  # the same session under another name
    info = json.loads((again / "session.json").read_text())
    (again / "session.json").write_text(json.dumps({**info, "id": "again"}))
    out = tmp_path / "comparison"
    done = in_process("report", "mb", "again", "--format", "md", "--out", str(out), home=compared)
    assert done.returncode == 0, done.stderr
    assert ("Train loss along every pair in the MST of any session compared (each panel's title names the "
            "sessions whose MST holds the pair)") in (out / "comparison.md").read_text()


def test_the_table1_row_a_finished_session_prints_is_the_reports(bezier_session, tmp_path):
    """What `explore` prints at the end is the report's Table 1 row: evaluated here
    without the report's lines and profiles (sessions.analysis.collect.table1, for a
    session finished without the row), number for number, both in this process at the
    same torch threads; and as the runner saved it. Here for a session that aligned its
    minima, whose Table 1 is taken at the aligned ones."""
    from sessions.analysis.collect import ReportOptions, collect, table1
    from sessions.disk.folder import SessionFolder

    folder = SessionFolder.open(bezier_session.parent, bezier_session.name)
    row = table1(folder, ReportOptions())
    assert row == collect(folder, ReportOptions(hessian_k=0, slices=0, ensemble_k=0)).document["table1"]
    assert row["minima"] == 3 and row["train_loss_saddles"] > row["train_loss_minima"] > 0
    # the runner saved the same row as it finished, at its workers' torch threads: float32 means
    # over at most 1437 samples, summed in another order, agree to 1437 float32 roundings
    saved = json.loads((bezier_session / "results" / "table1.json").read_text())
    assert saved.keys() == row.keys()
    for key, value in row.items():
        if isinstance(value, float):
            assert saved[key] == pytest.approx(value, rel=1437 * 2.0 ** -24), key
        else:
            assert saved[key] == value, key
    # a following command prints the saved row; a damaged one is evaluated again
    home = copy_session(bezier_session, tmp_path / "home").parent
    shown = in_process("sessions", "attach", "bz", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["table1"] == saved
    (home / "bz" / "results" / "table1.json").write_text('{"train_loss_minima": "low"}')
    shown = in_process("sessions", "attach", "bz", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["table1"] == row
