"""How well K workers share an exploration: the real pair sequence
(engine/landscape/sequence.py, the code the runner drives) on synthetic landscapes,
with a simulated clock.

Landscapes: M minima (M = 10, 20, 50; several landscapes each) whose saddles
are ultrametric-like: see ``landscape``. Pair durations: drawn from a lognormal whose
spread matches real digits pairs (``--spread``, the standard deviation of the
log duration; see DURATION_SPREAD). For K = 1, 2, 4, 8, 32 workers and each
stop rule, it prints one JSON line: makespan relative to K = 1, mean worker
utilisation, pairs computed (finished) and started relative to K = 1, and the
pairs chosen beyond need.

    python bench/explore_sim.py [--landscapes 6] [--lookahead 2k]

Runs in seconds; no torch.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.landscape.graph import Landscape  # noqa: E402
from engine.landscape.sequence import PairSequence, lookahead_for  # noqa: E402

# Standard deviation of log(pair duration), measured on real digits pairs: the
# 15 pairs of 6 MLP minima (64-32-10, `nebtui train --count 6 --scale 0.3`),
# explored with the digits demo's schedule (paper x 0.05) on one CPU worker:
# 3.8 to 17.3 s, mean 8.3 s, log sd 0.39 (on a busy machine, whose varying load
# adds to the spread). Pairs differ mostly by how many pivots AutoNEB inserts.
DURATION_SPREAD = 0.4
MINIMA = (10, 20, 50)
WORKERS = (1, 2, 4, 8, 32)
STOPS = ("all_pairs", "tolerance", "max_pairs")
MERGE_GAP = 0.001  # mean gap between the true saddles of successive merges
PATH_EXCESS = 0.05  # mean excess of a computed path's saddle over the true one
TOLERANCE_FACTOR = 1.5  # the tolerance rule: this times the spread of the MST of all pairs


def landscape(m: int, rng: random.Random) -> tuple[list[float], dict[tuple[int, int], float]]:
    """Energies and a computed saddle for every pair. The true minimax saddles come
    from a random merge tree (ultrametric) and lie close together, as the paper
    finds ("essentially no barriers"); each computed path adds an exponential
    excess (a band not fully relaxed), so the spread of the MST's saddles shrinks
    as the exploration replaces its highest edges."""
    energies = [rng.uniform(0.0, 0.1) for _ in range(m)]
    clusters = [[i] for i in range(m)]
    saddles: dict[tuple[int, int], float] = {}
    height = 1.0
    while len(clusters) > 1:
        height += rng.expovariate(1.0) * MERGE_GAP
        i, j = sorted(rng.sample(range(len(clusters)), 2))
        for a in clusters[i]:
            for b in clusters[j]:
                saddles[(min(a, b), max(a, b))] = height + rng.expovariate(1.0 / PATH_EXCESS)
        clusters[i] += clusters.pop(j)
    return energies, saddles


def options_for(stop: str, energies, saddles) -> dict:
    """The landscape options of a stop rule for one landscape: max-pairs stops at 3 M
    pairs; the tolerance is TOLERANCE_FACTOR times the spread of the MST of all
    pairs, so that one pair at a time stops in the middle of the refinement."""
    if stop == "all_pairs":
        return {}
    if stop == "max_pairs":
        return {"max_pairs": 3 * len(energies)}
    complete = Landscape(energies)
    for pair, saddle in saddles.items():
        complete.add_path(*pair, saddle)
    tree = [s for _, _, s in complete.mst()]
    return {"stop": "tolerance", "tolerance": TOLERANCE_FACTOR * (max(tree) - min(tree))}


def simulate(energies, saddles, workers: int, lookahead: int, options: dict, rng: random.Random) -> dict:
    """One exploration on ``workers`` simulated workers: makespan, busy time, pairs
    started and finished (those beyond need are stopped at once when the landscape
    finishes, so only their time so far counts)."""
    sequence = PairSequence(Landscape(energies, **options), lookahead)
    durations = {pair: math.exp(rng.gauss(0.0, DURATION_SPREAD)) for pair in saddles}
    clock, busy_time, started, finished, running = 0.0, 0.0, 0, 0, []  # running: (end, start, pair)
    while True:
        in_flight = {pair for _, _, pair in running}
        for pair in sequence.open():
            if len(running) >= workers:
                break
            if pair not in in_flight:
                started += 1
                heapq.heappush(running, (clock + durations[pair], clock, pair))
        if not running:
            break
        if sequence.finished:  # the rest is beyond need: stopped at once
            busy_time += sum(clock - start for _, start, _ in running)
            break
        clock, start, pair = heapq.heappop(running)
        busy_time += clock - start
        finished += 1
        sequence.add(pair, saddles[pair])
    return {"makespan": clock, "busy": busy_time, "started": started, "finished": finished,
            "beyond_need": len(sequence.beyond_need), "mst": sequence.landscape.mst()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landscapes", type=int, default=6,
                        help="random landscapes for M = 10 and 20 (a third as many for M = 50)")
    parser.add_argument("--lookahead", default="rule", help="'rule' (the runner's), or k, k+1, 2k: pairs chosen ahead")
    args = parser.parse_args()

    def window(k: int) -> int:
        if args.lookahead == "rule":
            return lookahead_for(k)
        return {"k": k, "k+1": k + 1, "2k": 2 * k}[args.lookahead]

    rows = []
    for m in MINIMA:
        count = args.landscapes if m <= 20 else max(1, args.landscapes // 3)
        cases = [landscape(m, random.Random(1000 * m + i)) for i in range(count)]
        for stop in STOPS:
            options = [options_for(stop, e, s) for e, s in cases]
            base = [simulate(e, s, 1, 1, o, random.Random(i)) for i, ((e, s), o) in enumerate(zip(cases, options))]
            for k in WORKERS:
                runs = [simulate(e, s, k, window(k), o, random.Random(i))
                        for i, ((e, s), o) in enumerate(zip(cases, options))]
                if stop == "all_pairs":
                    assert all(r["mst"] == b["mst"] for r, b in zip(runs, base)), "all pairs: the MST must not change"
                rows.append({
                    "minima": m, "stop": stop, "workers": k, "lookahead": window(k),
                    "makespan_vs_1": round(statistics.mean(r["makespan"] / b["makespan"] for r, b in zip(runs, base)), 3),
                    "utilisation": round(statistics.mean(r["busy"] / (k * r["makespan"]) for r in runs), 3),
                    "pairs_vs_1": round(statistics.mean(r["finished"] / b["finished"] for r, b in zip(runs, base)), 3),
                    "started_vs_1": round(statistics.mean(r["started"] / b["started"] for r, b in zip(runs, base)), 3),
                    "beyond_need": round(statistics.mean(r["beyond_need"] for r in runs), 2),
                })
    goals = {
        "m10_all_pairs_k8_makespan_le_1/6": next(r["makespan_vs_1"] for r in rows
                                                 if (r["minima"], r["stop"], r["workers"]) == (10, "all_pairs", 8)),
        "m20_all_pairs_k8_utilisation_ge_0.8": next(r["utilisation"] for r in rows
                                                    if (r["minima"], r["stop"], r["workers"]) == (20, "all_pairs", 8)),
        "tolerance_pairs_vs_1_le_1.25": max(r["pairs_vs_1"] for r in rows if r["stop"] == "tolerance"),
        "tolerance_started_vs_1": max(r["started_vs_1"] for r in rows if r["stop"] == "tolerance"),
    }
    print(json.dumps({"bench": "explore_sim", "spread": DURATION_SPREAD, "lookahead": args.lookahead,
                      "goals": goals, "rows": rows}))


if __name__ == "__main__":
    main()
