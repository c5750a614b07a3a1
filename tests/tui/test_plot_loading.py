"""The app's first frame does not wait for plotext: the panes show a placeholder in
their plots' place, the app imports plotext once that frame is drawn, and the plots
follow. Checked in a fresh interpreter, where nothing has imported plotext yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from nebtui.app import SessionApp
from nebtui.app.chart import LOADING, plots_ready
from nebtui.app.panes import SchedulePane
from tui_fakes import CONFIG, FakeSource, running_events, wait_until

drawn = []  # (plotext imported, what the schedule pane drew), for each draw
draw = SchedulePane.draw
def recorded(self, width, height):
    text = draw(self, width, height)
    drawn.append(("plotext" in sys.modules, text.plain))
    return text
SchedulePane.draw = recorded

async def main():
    app = SessionApp(FakeSource(running_events()), None, session_id="s", config=CONFIG,
                     clock=lambda: 0.0, pairs_total=3)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: bool(drawn) and "lr on a log scale" in drawn[-1][1], timeout=60,
                         what="the lr plot")
    print(json.dumps({"drawn": drawn, "loading": LOADING}))

assert "plotext" not in sys.modules and not plots_ready()
asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_first_frame_does_not_wait_for_plotext_and_the_plots_follow():
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(HERE)], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    first_imported, first = result["drawn"][0]
    assert not first_imported and result["loading"] in first and "lr on a log scale" not in first
    assert "cycles" in first and "elapsed" in first  # the rest of the pane is there from the first frame
    assert "lr on a log scale" in result["drawn"][-1][1]
