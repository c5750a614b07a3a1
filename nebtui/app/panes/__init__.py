"""The app's panes: each a widget that draws from the SessionModel."""

from nebtui.app.panes.energy import EnergyPane
from nebtui.app.panes.log import LogPane
from nebtui.app.panes.mst import MSTPane
from nebtui.app.panes.schedule import SchedulePane
from nebtui.app.panes.status import StatusLine

__all__ = ["EnergyPane", "SchedulePane", "MSTPane", "LogPane", "StatusLine"]
