from datetime import date, timedelta

from automations.reports.charts import Series, nice_ticks, sparkline, time_series_chart


def test_nice_ticks():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(1000) == [0, 500, 1000]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]


def test_chart_escapes_every_text_and_labels_its_days():
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(20)]
    svg = time_series_chart(
        days=days,
        series=[Series("<b>Fires</b>", list(range(20)), "#000"), Series("Conv & more", [1] * 20, "#111", kind="line")],
        title='<script>alert("x")</script>',
    )
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg
    assert "&lt;b&gt;Fires&lt;/b&gt;" in svg and "Conv &amp; more" in svg
    # 19 bars (a zero day draws none), one line, a tooltip per day, at most 8 date labels.
    assert svg.count('class="day-bar"') == 19 and svg.count("<polyline") == 1
    assert svg.count('class="hover"') == 20
    assert svg.count('text-anchor="middle"') == 7 and ">Mar 1</text>" in svg
    assert "Totals: &lt;b&gt;Fires&lt;/b&gt;: 190, Conv &amp; more: 20." in svg


def test_sparkline():
    assert sparkline([], label="x") == ""
    svg = sparkline([0, 5, 10], label="Daily fires of <Demo>")
    assert 'aria-label="Daily fires of &lt;Demo&gt;"' in svg and svg.count("<polyline") == 1
