"""The landscape: the minima, the minimum spanning tree of saddle energies
rooted at the lowest minimum (each edge labelled with its saddle), the pairs
being computed (each with its cycle, step, pivots and its own ETA), pairs
done / total, and the MST edges under attack: those the
engine chose the pairs in flight to replace (PairChosen.attacked_edge). The
pane lays out what the events say; it decides nothing the algorithm decides."""

from __future__ import annotations

from rich.text import Text

from nebtui.app.panes.base import Pane
from nebtui.progress import clock_text


class MSTPane(Pane):
    def __init__(self, model, *, id: str = "mst") -> None:
        super().__init__(model, title="minima · MST", id=id)

    def draw(self, width: int, height: int) -> Text:
        model = self.model
        view = model.view
        total = "?" if model.pairs_total is None else str(model.pairs_total)
        minima = "?" if model.minima_total is None else str(model.minima_total)  # never the few seen so far
        lines = [Text(f"minima {minima} · pairs done {len(view.saddles)}/{total}", no_wrap=True)]
        shown = model.shown_pair()
        cycle_steps = [row.steps for row in model.schedule]
        for pair, trace in view.running.items():
            attacked = view.attacked.get(pair)
            why = f" (may replace edge {attacked})" if attacked else ""
            where = (f" · cycle {trace.cycle}/{trace.cycles} step {trace.step}/{trace.steps} · {trace.pivots} pivots"
                     f" · ETA {clock_text(trace.eta(cycle_steps, model.restarts))}") if trace.cycle else ""
            line = Text(f"computing {pair}{why}{where}", style="bold", no_wrap=True, overflow="ellipsis")
            if len(view.running) > 1 and shown is not None and shown.pair == pair:
                line.append("  ◀ energy pane (n: next)", style="bold cyan")
            lines.append(line)
        if view.lifecycle == "finished":
            lines.append(Text(f"finished ({(view.finished_reason or '').replace('_', ' ')})", no_wrap=True))
        lines.append(Text("tree of saddle energies (root: lowest minimum)", style="dim", no_wrap=True))
        lines += self._tree(model.attacked_edges())
        return Text("\n").join(lines)

    def _tree(self, attacked: set[tuple[int, int]]) -> list[Text]:
        rows = self.model.mst_tree()
        if not rows:
            return [Text("  (no minima known yet)", style="dim")]
        children: dict[int, list[tuple[int, float | None]]] = {}
        roots: list[int] = []
        for _depth, node, parent, saddle in rows:
            if parent < 0:
                roots.append(node)
            else:
                children.setdefault(parent, []).append((node, saddle))
        out: list[Text] = []

        def minimum(node: int) -> str:
            energy = self.model.minima.get(node)
            return f"minimum {node}" + (f" (E {energy:.4f})" if energy is not None else "")

        def walk(node: int, prefix: str) -> None:
            kids = children.get(node, [])
            for i, (child, saddle) in enumerate(kids):
                last = i == len(kids) - 1
                edge = tuple(sorted((node, child)))
                mark = "  ◀ attacked" if edge in attacked else ""
                line = Text(no_wrap=True, overflow="ellipsis")
                line.append(prefix + ("└─ " if last else "├─ "), style="dim")
                if self.model.saddle_at_end(edge):  # no barrier: its highest point is a minimum
                    line.append(f"no barrier, highest at an end {saddle:.4f} ", style="bold yellow")
                else:
                    line.append(f"saddle {saddle:.4f} ", style="bold" if mark else "")
                line.append(f"─ {minimum(child)}")
                line.append(mark, style="bold red")
                out.append(line)
                walk(child, prefix + ("   " if last else "│  "))

        for root in roots:
            out.append(Text(minimum(root), style="bold", no_wrap=True))
            walk(root, "")
        return out
