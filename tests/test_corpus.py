"""The development corpus generator (bench/corpus.py), reduced to a few small videos that build in
seconds from the repo's own sample stills."""

import json
import os
import sys

import av
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import itertools

import corpus

SMALL = corpus.CorpusConfig(seed=7, videos=3, width=160, height=90, min_shot=10, max_shot=40)


@pytest.fixture(scope="module")
def photos():
    ph = corpus.photo_library(max_side=400, debian=False)  # the repo's Sintel sample only
    assert len({p.family for p in ph}) >= 4
    return ph


@pytest.fixture(scope="module")
def built(photos, tmp_path_factory):
    return corpus.build_corpus(str(tmp_path_factory.mktemp("corpus")), SMALL, photos)


def test_truth_is_consistent(built):
    for it in built:
        n = it["frames"]
        for key in ("shots", "scenes"):
            spans = it[key]
            assert spans[0][0] == 0 and spans[-1][1] == n - 1
            assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))
        starts = {a for a, _ in it["shots"][1:]}
        assert {a for a, _ in it["scenes"][1:]} <= starts  # a scene change is a shot change
        assert len(it["transitions"]) == len(it["shots"]) - 1
        for t, (a, _) in zip(it["transitions"], it["shots"][1:]):
            assert 0 <= t["first"] <= a <= t["last"] + 1 <= n
            assert t["scene_change"] == (a in {s for s, _ in it["scenes"][1:]})
        with open(it["path"] + ".json") as f:
            assert json.load(f)["frames"] == n


def test_videos_decode_to_the_truths_frame_count(built):
    for it in built:
        with av.open(it["path"]) as c:
            assert sum(1 for _ in c.decode(video=0)) == it["frames"]


def test_hard_cuts_change_the_picture(built):
    """Across a hard cut consecutive frames differ far more than inside a shot."""
    it = max(built, key=lambda x: sum(t["kind"] == "cut" for t in x["transitions"]))
    with av.open(it["path"]) as c:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]
    diffs = np.array([0.0] + [np.abs(a - b).mean() for a, b in itertools.pairwise(frames)])
    cuts = [t["last"] for t in it["transitions"] if t["kind"] == "cut"]
    assert cuts
    inside = np.delete(diffs, [0, *cuts])
    assert np.median(diffs[cuts]) > 3 * np.median(inside)


def test_plans_are_deterministic_and_cover_the_kinds(photos):
    cfg = corpus.CorpusConfig(seed=3, videos=30, width=160, height=90)
    plans = [corpus.plan_video(i, photos, cfg) for i in range(cfg.videos)]
    again = [corpus.plan_video(i, photos, cfg) for i in range(cfg.videos)]
    assert [corpus.timeline(p)[1] for p in plans] == [corpus.timeline(p)[1] for p in again]
    kinds = {p.kind for p in plans}
    assert kinds == {"scenes", "single_scene", "compilation"}
    truths = [corpus.timeline(p)[1] for p in plans]
    transition_kinds = {t["kind"] for tr in truths for t in tr["transitions"]}
    assert transition_kinds == {"cut", "dissolve", "fade"}
    events = {e["kind"] for tr in truths for e in tr["events"]}
    assert {"flash", "brightness_ramp", "fade_in_from_black", "fade_out_to_black"} <= events
    for p in plans:  # no two scenes of a video from one photo family
        fams = [photos[sc["photo"]].family for sc in p.scenes]
        assert len(fams) == len(set(fams))


def test_rebuilding_reuses_the_cache(built, photos, tmp_path):
    folder = os.path.dirname(built[0]["path"])
    again = corpus.build_corpus(os.path.dirname(folder), SMALL, photos)
    assert [it["path"] for it in again] == [it["path"] for it in built]
    assert corpus.summary(again)["videos"] == 3
