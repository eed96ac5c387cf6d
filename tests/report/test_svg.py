"""The report's SVG: time ticks, bands, and bucketed plots that keep peaks."""

import re

import numpy as np

from reelbeam.report import svg


def test_nice_steps_and_clock():
    assert svg.nice_step(30) == 5 and svg.nice_step(4.2) == 0.5 and svg.nice_step(7200) == 900
    assert svg.fmt_time(3725) == "1:02:05" and svg.fmt_time(7.34, precise=True) == "0:07.3"


def test_axis_ticks_cover_the_duration():
    html = svg.axis(30.0)
    lefts = [float(x) for x in re.findall(r"left:([\d.]+)%", html)]
    assert lefts[0] == 0 and lefts[-1] == 100 and len(lefts) == 7


def test_bands_link_and_label_only_wide_spans():
    html = svg.bands([svg.Band(0, 9, "0", "shot 0", "#shot-0"), svg.Band(9, 9.05, "1", "<b>", "#shot-1")],
                     10.0, 26, "shots", "shots")
    assert html.count("<rect") == 2 and 'href="#shot-1"' in html
    assert "&lt;b&gt;" in html  # tooltips are escaped
    assert len(re.findall(r"<span [^>]*>0</span>", html)) == 1 and ">1</span>" not in html


def test_series_plot_draws_nan_gaps_and_peaks():
    peak = np.array([0.1, 0.9, np.nan, 0.2], np.float32)
    html = svg.series_plot(peak, None, 4.0, 1.0, 50, "transition", "p")
    assert html.count("<polygon") == 2  # the empty bucket splits the area
    ys = [float(y) for y in re.findall(r",([\d.]+)", html.split("<polygon", 1)[1].split("/>")[0])]
    assert min(ys) < 10  # the 0.9 peak reaches near the top of a 50-unit plot
    joined = svg.series_plot(peak, peak, 4.0, 1.0, 50, "scores", "s", connect=True)
    assert joined.count("<polygon") == 1 and joined.count("<polyline") == 1
