"""What ending a pair once its band has settled (--converge) saves, and what it costs
in saddle energy: the digits demo (four MLP minima, six pairs, the paper's schedule
at the demo's scale) run in full and at each --converge setting, on one worker at one
thread and a fixed strategy, so that every difference comes from the stop rule.

Per setting: the work of all pairs (per-sample forward passes of steps and of dense
evaluation, from each pair's cost account) as a fraction of the full schedule's, and
each pair's saddle relative to the full run's (median and range), and the MST's.
Prints one JSON line.  python bench/converge.py [--settings 0.01:2 0.003:2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NEBTUI = str(Path(sys.executable).with_name("nebtui"))
DEMO = ("demo", "digits", "--headless", "--threads", "1", "--strategy", "batched", "--workers", "1")


def _session(home: Path, name: str, *extra: str) -> dict:
    env = {**os.environ, "NEBTUI_HOME": str(home)}
    done = subprocess.run([NEBTUI, *DEMO, "--session", name, *extra], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench/converge.py: the session {name} failed: {done.stderr.strip()}")
    shown = subprocess.run([NEBTUI, "sessions", "show", name, "--json"], capture_output=True, text=True, env=env,
                           check=True)
    return json.loads(shown.stdout)


def _work(session: dict) -> tuple[int, int]:
    """Forward samples of steps and of dense evaluation, summed over the session's paths."""
    steps = sum(p["cost"]["steps"]["forward"] for p in session["paths"])
    evaluation = sum(p["cost"]["evaluation"]["forward"] for p in session["paths"])
    return steps, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["0.01:2", "0.003:2"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nebtui-converge-") as folder:
        home = Path(folder)
        full = _session(home, "full")  # trains the demo's minima once, into this home
        full_steps, full_evaluation = _work(full)
        saddles = {(p["a"], p["b"]): p["saddle_energy"] for p in full["paths"]}
        mst = statistics.mean(e["saddle_energy"] for e in full["mst"])
        rows = []
        for setting in args.settings:
            run = _session(home, "c" + setting.replace(".", "").replace(":", "-"), "--converge", setting)
            steps, evaluation = _work(run)
            ratios = [p["saddle_energy"] / saddles[(p["a"], p["b"])] for p in run["paths"]]
            rows.append({
                "converge": setting,
                "step_work": round(steps / full_steps, 4),
                "evaluation_work": round(evaluation / full_evaluation, 4),
                "saddle_ratio": {"median": round(statistics.median(ratios), 5), "min": round(min(ratios), 5),
                                 "max": round(max(ratios), 5)},
                "mst_mean_saddle_ratio": round(statistics.mean(e["saddle_energy"] for e in run["mst"]) / mst, 5),
            })
    print(json.dumps({"bench": "converge", "problem": "digits demo, 4 minima, 6 pairs", "pairs": len(saddles),
                      "full": {"step_samples": full_steps, "evaluation_samples": full_evaluation,
                               "mst_mean_saddle": mst},
                      "settings": rows}))


if __name__ == "__main__":
    main()
