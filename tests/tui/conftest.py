"""The app tests draw the panes' plots from the first frame on: the app itself imports
plotext a moment after its first frame (test_plot_loading checks that moment, in a
fresh interpreter)."""

from __future__ import annotations

import pytest

from nebtui.app.chart import load_plots


@pytest.fixture(autouse=True, scope="session")
def plots_loaded() -> None:
    load_plots()
