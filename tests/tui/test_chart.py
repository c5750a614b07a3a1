"""The panes' plotext charts: size, where things land, glyphs, determinism."""

from __future__ import annotations

from nebtui.app.chart import Chart, pixel


def rows_of(chart: Chart) -> list[str]:
    return chart.render().plain.split("\n")


def test_the_chart_fills_the_size_it_is_given_whatever_the_terminal():
    chart = Chart(150, 30, (0.0, 1.0), (0.0, 1.0), x_label="arc length")
    chart.line([0.0, 1.0], [0.0, 1.0], "•")
    rows = rows_of(chart)
    assert len(rows) == 30
    assert max(len(r) for r in rows) == 150


def test_points_land_where_their_values_say():
    chart = Chart(60, 20, (0.0, 1.0), (0.0, 10.0))
    chart.points([0.0], [10.0], "A")  # top left of the data area
    chart.points([1.0], [0.0], "B")  # bottom right
    chart.points([0.5], [5.0], "C")  # the middle
    rows = rows_of(chart)
    where = {g: (r, row.index(g)) for g in "ABC" for r, row in enumerate(rows) if g in row}
    (ra, ca), (rb, cb), (rc, cc) = where["A"], where["B"], where["C"]
    assert ra < rc < rb and ca < cc < cb
    assert abs((ra + rb) / 2 - rc) <= 1 and abs((ca + cb) / 2 - cc) <= 1


def test_a_curve_is_drawn_between_its_points_and_later_series_sit_on_top():
    chart = Chart(60, 15, (0.0, 1.0), (0.0, 1.0))
    chart.line([0.0, 1.0], [0.5, 0.5], "•")
    chart.points([0.5], [0.5], "▲")
    row = next(r for r in rows_of(chart) if "▲" in r)
    assert row.count("•") >= 40  # a continuous line across the data area
    assert "▲" in row


def test_steps_join_their_levels_with_a_vertical_rule_and_notes_sit_on_rules():
    chart = Chart(60, 15, (0.0, 2.0), (0.0, 1.0))
    chart.steps([0.0, 1.0, 2.0], [1.0, 0.0])
    chart.hline(0.5, "╌", note="linear saddle")
    text = "\n".join(rows_of(chart))
    assert "─" in text and "│" in text
    rule = next(r for r in text.split("\n") if "linear saddle" in r)
    assert "╌" in rule


def test_tick_labels_come_from_the_formatter_and_nonfinite_values_are_skipped():
    chart = Chart(60, 15, (0.0, 1.0), (0.0, 2.0), x_ticks=((0.0, "start"), (1.0, "end")),
                  y_format=lambda v: f"<{v:g}>")
    chart.points([0.2, 0.4, 0.6], [1.0, float("nan"), float("inf")], "o")
    text = chart.render().plain
    assert "<0>" in text and "<1>" in text and "<2>" in text
    assert "start" in text and "end" in text
    assert text.count("o") == 1


def test_the_same_data_give_the_same_text_with_colour():
    def make() -> Chart:
        chart = Chart(50, 12, (0.0, 1.0), (-1.0, 1.0))
        chart.line([0.0, 0.5, 1.0], [-1.0, 1.0, -1.0], "•", "cyan")
        chart.points([0.5], [1.0], "▲", "bold red")
        return chart

    first, second = make().render(), make().render()
    assert first.plain == second.plain
    assert [str(s.style) for s in first.spans] == [str(s.style) for s in second.spans]
    triangle = first.plain.index("▲")
    styles = {str(s.style) for s in first.spans if s.start <= triangle < s.end}
    assert styles == {"bold color(1)"}  # red, the first of the 16 terminal colours


def test_rich_like_styles_become_plotext_pixels():
    bold_yellow = pixel("bold yellow")
    assert bold_yellow.foreground() is not None
    assert pixel("dim").foreground() is None
