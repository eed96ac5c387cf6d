"""Every query in docs/analytics.md runs against a small output, its SQL and pandas forms give
the same answer, and that answer is the right one, worked out here independently."""

import os
import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from reelbeam import read

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "analytics.md")
DOC_SHOT_ID = "5efecf2cec27e2fd"  # the shot id the document uses as an example


def sections() -> dict[str, dict[str, str]]:
    """heading -> {'sql': code, 'python': code} from the document."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    out = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading, body = part.split("\n", 1)
        blocks = dict(re.findall(r"```(sql|python)\n(.*?)```", body, flags=re.DOTALL))
        if blocks:
            out[heading.strip()] = blocks
    return out


SECTIONS = sections()


def test_the_document_has_the_queries_the_tests_check():
    assert set(SECTIONS) == {
        "Longest scenes",
        "Static shots by motion score",
        "Shots nearest to a given shot, by embedding",
        "Frames most relevant to a query",
        "Cutting rate per video",
    }
    assert all(set(b) == {"sql", "python"} for b in SECTIONS.values())


@pytest.fixture(scope="module")
def workdir(full_output, tmp_path_factory):
    """A folder holding the output as `out`, the current directory while the queries run."""
    out, facts = full_output
    folder = tmp_path_factory.mktemp("analytics")
    os.symlink(out, folder / "out")
    return folder, facts


def run_both(heading, workdir, monkeypatch, replace=()):
    folder, _ = workdir
    monkeypatch.chdir(folder)
    sql, py = SECTIONS[heading]["sql"], SECTIONS[heading]["python"]
    for old, new in replace:
        assert old in sql and old in py
        sql, py = sql.replace(old, new), py.replace(old, new)
    by_sql = duckdb.connect().sql(sql).df()
    scope = {}
    exec(compile(py, f"{DOC}:{heading}", "exec"), scope)  # noqa: S102 (the documented code is the test)
    by_pandas = scope["result"].reset_index(drop=True)
    assert list(by_sql.columns) == list(by_pandas.columns)
    assert len(by_sql) == len(by_pandas) > 0
    pd.testing.assert_frame_equal(by_sql, by_pandas, check_dtype=False, check_exact=False, rtol=1e-5, atol=1e-6)
    return by_sql


def test_longest_scenes(workdir, monkeypatch):
    result = run_both("Longest scenes", workdir, monkeypatch)
    scenes = read(str(workdir[0] / "out"), "scenes").to_pandas()
    durations = sorted(scenes.end_time - scenes.start_time, reverse=True)[:10]
    assert np.allclose(result.seconds, durations)


def test_static_shots_by_motion_score(workdir, monkeypatch):
    result = run_both("Static shots by motion score", workdir, monkeypatch)
    shots = read(str(workdir[0] / "out"), "shots").to_pandas()
    eligible = shots[shots.motion_score.notna() & (shots.end_time - shots.start_time >= 1.0)]
    assert np.allclose(result.motion_score, sorted(eligible.motion_score)[:10])
    assert (result.end_time - result.start_time >= 1.0).all()


def test_shots_nearest_to_a_given_shot(workdir, monkeypatch):
    _, facts = workdir
    shots = read(str(workdir[0] / "out"), "shots").to_pandas()
    shot0 = shots[(shots.video_id == facts["plain"]) & (shots.shot_idx == 0)].shot_id.item()
    result = run_both(
        "Shots nearest to a given shot, by embedding", workdir, monkeypatch, replace=[(DOC_SHOT_ID, shot0)]
    )
    # the fixture made shot 1 of the same video a near copy of shot 0
    assert (result.video_id[0], result.shot_idx[0]) == (facts["plain"], 1)
    assert result.similarity[0] > 0.85 and shot0 not in set(result.shot_id)
    assert list(result.similarity) == sorted(result.similarity, reverse=True)


def test_frames_most_relevant_to_a_query(workdir, monkeypatch):
    _, facts = workdir
    result = run_both("Frames most relevant to a query", workdir, monkeypatch)
    best = max(score for (vid, q), (score, _) in facts["best_frame"].items() if q == "a red car")
    assert result.score[0] == pytest.approx(best)
    assert list(result.score) == sorted(result.score, reverse=True)


def test_cutting_rate_per_video(workdir, monkeypatch):
    result = run_both("Cutting rate per video", workdir, monkeypatch)
    videos = read(str(workdir[0] / "out"), "videos").to_pandas()
    assert len(result) == len(videos)
    expected = sorted(videos.num_shots / (videos.duration_s / 60), reverse=True)
    assert np.allclose(result.shots_per_minute, expected)
