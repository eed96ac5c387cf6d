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


# ------------------------------------------------------------------------------------------------
# Hard cases (issue #27): every class, with frame-exact truth, on a small seed

HARD_SMALL = corpus.hard_config(seed=5, videos=1, width=160, height=90)


@pytest.fixture(scope="module")
def hard_plan(photos):
    return corpus.plan_video(0, photos, HARD_SMALL)


def test_hard_videos_hold_every_class(hard_plan, photos):
    _, truth = corpus.timeline(hard_plan)
    classes = [t["class"] for t in truth["transitions"]]
    for k in corpus.HARD_TRANSITIONS:
        assert classes.count(k) == corpus.HARD_PER_VIDEO[k], k
    events = [e["kind"] for e in truth["events"]]
    for k in corpus.HARD_TRAPS:
        assert events.count(k) == corpus.HARD_PER_VIDEO[k], k
    kinds = {t["class"]: t["kind"] for t in truth["transitions"]}
    assert kinds["wipe"] == "wipe" and kinds["long_dissolve"] == "dissolve" and kinds["fade_out_in"] == "fade"
    assert all(kinds[k] == "cut" for k in ("dark_cut", "same_location_cut", "cut"))
    assert corpus.plan_video(0, photos, HARD_SMALL) == hard_plan  # seeded
    assert not any(t["scene_change"] for t in truth["transitions"] if t["class"] == "same_location_cut")


def test_hard_truth_is_frame_exact(hard_plan):
    """The truth's frames against the timeline the renderer draws: which shots each frame shows."""
    frames, truth = corpus.timeline(hard_plan)

    def shown(f):
        return {j for j, _, _ in frames[f][0]}

    plan = hard_plan
    for i, t in enumerate(truth["transitions"], start=1):
        a, b = t["first"], t["last"]
        if t["kind"] == "cut":
            assert shown(a) == {i - 1} and shown(b) == {i}, t
        elif t["kind"] in ("dissolve", "wipe"):
            d = b - a + 1
            lo, hi = {"dissolve": (8, 60), "wipe": (10, 20)}[t["kind"]]
            assert lo <= d <= hi and (d >= 40) == (t["class"] == "long_dissolve")
            assert shown(a - 1) == {i - 1} and shown(b + 1) == {i}
            assert all(shown(f) == {i - 1, i} for f in range(a, b + 1))
        else:  # fade: out of shot i-1, maybe black, into shot i; full weight just outside
            assert frames[a - 1][1] == 1.0 and shown(a - 1) == {i - 1}
            assert frames[b + 1][1] == 1.0 and shown(b + 1) == {i}
            assert all(frames[f][1] < 1.0 for f in range(a, b + 1))
        if t["class"] == "dark_cut":
            assert max(plan.shots[i - 1].gains) <= 0.3 + 1e-9 and max(plan.shots[i].gains) <= 0.3 + 1e-9
        if t["class"] == "same_location_cut":
            s0, s1 = plan.shots[i - 1], plan.shots[i]
            assert s0.photo == s1.photo and s0.setup != s1.setup
    starts = {t["first"]: t for t in truth["transitions"]}
    for e in truth["events"]:
        j = next(j for j, _, _ in frames[e["first"]][0])
        if e["kind"] == "exposure_step":
            (_, t0, _), (_, t1, _) = frames[e["first"]][0][0], frames[e["last"]][0][0]
            assert e["last"] == e["first"] + 1 and t1 == plan.shots[j].step[0] == t0 + 1
        elif e["kind"] == "fast_pan":
            assert plan.shots[j].fast_pan and np.hypot(*plan.shots[j].pan) >= 20 * 160 / 640
        for f in range(e["first"], e["last"] + 1):  # traps lie inside one shot, away from transitions
            assert len(frames[f][0]) == 1 and frames[f][1] == 1.0
        assert not any(a - 2 <= f <= a + 2 for a in starts for f in (e["first"], e["last"]))


def test_hard_video_renders_its_wipes(hard_plan, photos, tmp_path):
    """A rendered wipe, mid-way: the columns the edge has crossed show the incoming shot's frame,
    the others the outgoing shot's (each drawn alone by the renderer, compared with the decoded
    frame)."""
    truth = corpus.render_video(hard_plan, photos, str(tmp_path / "hard.mp4"), seed=1)
    with av.open(str(tmp_path / "hard.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    assert len(frames) == truth["frames"]
    layers, _ = corpus.timeline(hard_plan)
    wipes = [t for t in truth["transitions"] if t["kind"] == "wipe"]
    assert wipes
    for t in wipes:
        f = (t["first"] + t["last"]) // 2
        (j_out, t_out, w), (j_in, t_in, _) = layers[f][0]
        _, progress, direction, _ = w
        edge = progress * (160 + corpus.WIPE_EDGE)
        near = slice(0, int(edge) - 8) if direction > 0 else slice(160 - int(edge) + 8, 160)
        far = slice(int(edge) + 4, 160) if direction > 0 else slice(0, 160 - int(edge) - 4)
        pics = [corpus._ShotRenderer(hard_plan, hard_plan.shots[j], photos[hard_plan.shots[j].photo], 0).frame(k, 1.0).astype(np.float32)
                for j, k in ((j_out, t_out), (j_in, t_in))]

        def dist(a, b, cols):
            return np.abs(a[:, cols] - b[:, cols]).mean()

        assert dist(frames[f], pics[1], near) < dist(frames[f], pics[0], near), t
        assert dist(frames[f], pics[0], far) < dist(frames[f], pics[1], far), t
