"""Development corpus: videos made of natural photographs with known shots, transitions and scenes.

    .venv/bin/python bench/corpus.py [--workdir bench/out/corpus] [--videos 40] [--seed 2026]

Used by bench/shots.py and bench/scenes.py (and, reduced, by the tests). Every video is generated
here from still photographs; nothing generated and no third-party image is committed: the photos
are read at bench time from where they are installed and the videos are cached under the
(gitignored) work directory, keyed by the generator version, the seed and the photo set.

Photos ("locations"), each with a family (stills of one film location share one) so that two
scenes of a video never come from the same family:
- photographic wallpapers of Debian packages (`apt-get install mate-backgrounds
  lomiri-wallpapers-16.04 lomiri-wallpapers-20.04`; CC-BY / CC-BY-SA / GPL, see each package's
  copyright file): the 27 photographs among them, listed in `DEBIAN_PHOTOS` (abstract artwork
  left out);
- stills of the CC-BY Blender sample videos (`samples/sintel_trailer_30s.mp4` in the repo, and
  `big_buck_bunny_132f.mp4` in ../shared/samples when present), letterbox removed;
- matplotlib's sample photograph (`grace_hopper.jpg`) when matplotlib is installed.
scikit-image's sample photos are deliberately NOT used: they are kept for an independent check.

A video is a sequence of scenes; a scene is one photo filmed from 2-4 "camera set-ups" (crops
at zoom 1-2.6 of the photo's largest 16:9 window, each slowly panning / zooming, some hand-held,
some fast pans), cut A B A C ... Each shot has its own colour temperature (R/B gains) and
exposure; some scenes are greyscale or low-contrast. Transitions: hard cuts and 8-50-frame
dissolves both inside and between scenes, fades through black between scenes. Events that are NOT
transitions: a fade-in from black at the start, a fade-out at the end, flashes (1-4 frames
towards white), and slow brightness ramps inside a shot. Then per-frame sensor noise (Gaussian,
sigma 0-8) and H.264 compression (CRF 18-33). Kinds of video: multi-scene ('scenes'),
single-scene excerpts of 1-8 shots ('single_scene', including 3-shot excerpts), and compilations
of short unrelated clips ('compilation').

Ground truth is written beside each video as JSON (see `render_video`): shot spans, transitions
(kind, first and last frame of the transition: a cut before frame p is (p-1, p)), scene spans
(between-scene transitions split at their middle) and the non-transition events.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Sequence

import cv2
import numpy as np
import itertools

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GENERATOR_VERSION = 1

# The photographs among the wallpapers of three Debian packages (the rest is abstract artwork).
DEBIAN_PHOTOS = {
    "mate-backgrounds": [
        "mate/nature/Aqua.jpg", "mate/nature/Blinds.jpg", "mate/nature/Dune.jpg", "mate/nature/FreshFlower.jpg",
        "mate/nature/Garden.jpg", "mate/nature/GreenMeadow.jpg", "mate/nature/LadyBird.jpg",
        "mate/nature/RainDrops.jpg", "mate/nature/Storm.jpg", "mate/nature/TwoWings.jpg", "mate/nature/Wood.jpg",
        "mate/nature/YellowFlower.jpg",
    ],
    "lomiri-wallpapers-16.04": [
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg",
    ],
    "lomiri-wallpapers-20.04": ["Kleiber_by_Lukas_Baubkus.jpg"],
}
BACKGROUNDS = "/usr/share/backgrounds"

# Stills of the Sintel trailer sample (frame index -> family: frames of one film location share one).
SINTEL_STILLS = {66: "sintel-snow", 110: "sintel-snow", 250: "sintel-oldman", 300: "sintel-hut", 360: "sintel-snow",
                 440: "sintel-alley", 510: "sintel-debris", 540: "sintel-sunset", 600: "sintel-sunset",
                 615: "sintel-sunset"}
SINTEL = os.path.join(REPO, "samples", "sintel_trailer_30s.mp4")
BUNNY = os.path.join(REPO, "..", "..", "shared", "samples", "big_buck_bunny_132f.mp4")
MAX_PHOTO_SIDE = 1600


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str
    family: str
    rgb: np.ndarray  # uint8 [H, W, 3]


# ------------------------------------------------------------------------------------------------
# Photos


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _read_image(path: str, max_side: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced size directly
        return _fit(np.asarray(im.convert("RGB")), max_side)


def _unletterbox(rgb: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(rgb.mean(axis=(1, 2)) > 12)
    return rgb[rows[0] : rows[-1] + 1] if len(rows) else rgb


def video_stills(path: str, frames: dict[int, str], prefix: str, max_side: int = MAX_PHOTO_SIDE) -> list[Photo]:
    """Stills of a sample video at the given frame indices (letterbox bars removed)."""
    import av

    if not os.path.exists(path):
        return []
    out = []
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in frames:
                out.append(Photo(f"{prefix}@{i}", frames[i], _fit(_unletterbox(f.to_ndarray(format="rgb24")), max_side)))
            if i >= max(frames):
                break
    return out


def photo_library(max_side: int = MAX_PHOTO_SIDE, debian: bool = True, samples: bool = True) -> list[Photo]:
    """All available photos in a fixed order (what is missing is skipped; see the module doc)."""
    photos: list[Photo] = []
    if debian:
        for package, names in DEBIAN_PHOTOS.items():
            for name in names:
                path = os.path.join(BACKGROUNDS, name)
                if os.path.exists(path):
                    photos.append(Photo(f"{package}:{os.path.basename(name)}", name, _read_image(path, max_side)))
        try:
            import matplotlib.cbook

            path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
            photos.append(Photo("matplotlib:grace_hopper.jpg", "grace_hopper", _read_image(str(path), max_side)))
        except (ImportError, OSError, ValueError):
            pass
    if samples:
        photos += video_stills(SINTEL, SINTEL_STILLS, "sintel", max_side)
        photos += video_stills(BUNNY, {60: "bunny"}, "bunny", max_side)
    return photos


def library_key(photos: Sequence[Photo]) -> str:
    """A short hash of the photo set (names and pixels), part of the corpus cache key."""
    h = hashlib.sha256()
    for p in photos:
        h.update(p.name.encode())
        h.update(p.rgb[::37, ::41].tobytes())
    return h.hexdigest()[:12]


# ------------------------------------------------------------------------------------------------
# Plans: what a video contains, drawn from the seed (pure, no pixels)


@dataclasses.dataclass
class Setup:
    """A camera set-up on a photo: zoom (1 = the photo's largest window of the output aspect) and
    the window centre as fractions of the free range."""

    zoom: float
    cx: float
    cy: float


@dataclasses.dataclass
class Shot:
    scene: int
    photo: int
    setup: int
    frames: int
    pan: tuple[float, float]  # output pixels per frame
    zoom_rate: float  # relative zoom change per frame
    shake: float  # hand-held jitter amplitude, output pixels
    gains: tuple[float, float, float]  # per-channel (colour temperature x exposure)
    ramp: tuple[int, int, float] | None = None  # (first local frame, length, exposure factor at the end)
    flashes: list = dataclasses.field(default_factory=list)  # (local frame, length, peak alpha)
    # Transition INTO this shot from the previous one: ('cut',), ('dissolve', d), ('fade', out, black, in),
    # ('wipe', d, direction) (hard-case videos: a vertical edge sweeping across in d frames,
    # direction +1 left to right, -1 right to left)
    into: tuple = ("cut",)
    step: tuple[int, float] | None = None  # (first local frame, exposure factor): a change that persists
    klass: str | None = None  # hard-case videos: the class of the transition into this shot
    fast_pan: bool = False  # hard-case videos: an in-shot trap (a pan of 20-40 px/frame)


@dataclasses.dataclass
class Plan:
    name: str
    kind: str
    width: int
    height: int
    fps: int
    crf: int
    noise: float
    scenes: list  # per scene: dict(photo=index, grey=bool, contrast=float, setups=[Setup])
    shots: list  # [Shot]
    fade_in: tuple[int, int] | None = None  # (black frames, fade frames) at the start
    fade_out: int | None = None  # fade frames at the end


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    seed: int = 2026
    videos: int = 40
    width: int = 640
    height: int = 360
    fps: int = 25
    kinds: tuple = (("scenes", 0.6), ("single_scene", 0.2), ("compilation", 0.2))
    min_shot: int = 12
    max_shot: int = 150


def _shot_length(rng, cfg: CorpusConfig, scale: float = 1.0) -> int:
    return int(np.clip(rng.lognormal(np.log(55 * scale), 0.5), cfg.min_shot, cfg.max_shot))


def _gains(rng, grey: bool) -> tuple[float, float, float]:
    exposure = float(np.exp(rng.normal(0, 0.18)))
    temp = 0.0 if grey else float(rng.normal(0, 0.07))
    return (exposure * (1 + temp), exposure, exposure * (1 - temp))


def _scene(rng, photo: int, compilation: bool) -> dict:
    grey = bool(rng.random() < 0.12)
    contrast = float(rng.uniform(0.35, 0.6)) if rng.random() < 0.12 else 1.0
    n = 1 if compilation and rng.random() < 0.4 else int(rng.integers(2, 5))
    setups = [Setup(float(rng.uniform(1.0, 2.6)), float(rng.random()), float(rng.random())) for _ in range(n)]
    return {"photo": photo, "grey": grey, "contrast": contrast, "setups": setups}


def _into(rng, scene_change: bool, compilation: bool) -> tuple:
    r = rng.random()
    if scene_change:
        if r < 0.55 or (compilation and r < 0.75):
            return ("cut",)
        if r < 0.8:
            return ("dissolve", int(rng.integers(8, 51)))
        return ("fade", int(rng.integers(6, 25)), int(rng.integers(0, 13)), int(rng.integers(6, 25)))
    return ("dissolve", int(rng.integers(8, 51))) if r < 0.15 else ("cut",)


def plan_video(index: int, photos: Sequence[Photo], cfg: CorpusConfig) -> Plan:
    """The specification of video `index` (deterministic in cfg.seed and index)."""
    if [k for k, _ in cfg.kinds] == ["hard"]:
        return plan_hard_video(index, photos, cfg)
    rng = np.random.default_rng([cfg.seed, index])
    names = [k for k, _ in cfg.kinds]
    kind = names[int(rng.choice(len(names), p=[p for _, p in cfg.kinds]))]
    families = sorted({p.family for p in photos})
    if kind == "scenes":
        n_scenes = int(rng.integers(3, 7))
    elif kind == "compilation":
        n_scenes = int(rng.integers(4, 9))
    else:
        n_scenes = 1
    n_scenes = min(n_scenes, len(families))
    chosen_families = [families[i] for i in rng.choice(len(families), n_scenes, replace=False)]
    scene_photos = []
    for fam in chosen_families:
        members = [i for i, p in enumerate(photos) if p.family == fam]
        scene_photos.append(members[int(rng.integers(len(members)))])
    compilation = kind == "compilation"
    scenes = [_scene(rng, p, compilation) for p in scene_photos]
    shots: list[Shot] = []
    for s, sc in enumerate(scenes):
        if kind == "single_scene":
            n_shots = int(rng.choice([1, 2, 3, 3, 4, 5, 6, 8]))
        elif compilation:
            n_shots = int(rng.integers(1, 4))
        else:
            n_shots = int(rng.integers(2, 7))
        prev_setup = -1
        for k in range(n_shots):
            choices = [i for i in range(len(sc["setups"])) if i != prev_setup] or [0]
            setup = int(rng.choice(choices))
            prev_setup = setup
            length = _shot_length(rng, cfg, 0.7 if compilation else 1.0)
            fast = rng.random() < 0.1
            speed = rng.uniform(4, 9) if fast else rng.exponential(0.8)
            angle = rng.uniform(0, 2 * np.pi)
            shot = Shot(
                scene=s, photo=sc["photo"], setup=setup, frames=length,
                pan=(float(speed * np.cos(angle)), float(speed * np.sin(angle) * 0.5)),
                zoom_rate=float(rng.normal(0, 0.002)) if rng.random() < 0.25 else 0.0,
                shake=float(rng.uniform(0.5, 2.5)) if rng.random() < 0.25 else 0.0,
                gains=_gains(rng, sc["grey"]),
            )
            if length >= 50 and rng.random() < 0.1:
                first = int(rng.integers(5, length - 40))
                shot.ramp = (first, int(rng.integers(20, min(60, length - first - 5) + 1)), float(np.exp(rng.uniform(-0.7, 0.7))))
            if length >= 30 and rng.random() < 0.07:
                shot.flashes.append((int(rng.integers(8, length - 10)), int(rng.integers(1, 5)), float(rng.uniform(0.4, 0.95))))
            if shots:
                shot.into = _into(rng, scene_change=k == 0, compilation=compilation)
            shots.append(shot)
    # A dissolve or fade needs material on both sides: shorten it to what the shots it joins have
    # left after their own incoming transition, so that transitions never overlap.
    used_head = 0  # frames at the head of shot a taken by its incoming transition
    for a, b in itertools.pairwise(shots):
        room_a = a.frames - used_head - 6
        if b.into[0] == "dissolve":
            d = int(min(b.into[1], room_a, b.frames // 2))
            b.into = ("dissolve", d) if d >= 4 else ("cut",)
        elif b.into[0] == "fade":
            out_n, in_n = int(min(b.into[1], room_a)), int(min(b.into[3], b.frames // 2))
            b.into = ("fade", out_n, b.into[2], in_n) if out_n >= 3 and in_n >= 3 else ("cut",)
        used_head = b.into[1] if b.into[0] == "dissolve" else (b.into[3] if b.into[0] == "fade" else 0)
    fade_in = (int(rng.integers(0, 16)), int(rng.integers(10, 41))) if rng.random() < 0.25 else None
    if fade_in and fade_in[1] > shots[0].frames - 4:
        fade_in = None
    fade_out = int(rng.integers(10, 41)) if rng.random() < 0.2 else None
    if fade_out and fade_out > shots[-1].frames - 4:
        fade_out = None
    return Plan(
        name=f"corpus_{cfg.seed}_{index:03d}", kind=kind, width=cfg.width, height=cfg.height, fps=cfg.fps,
        crf=int(rng.choice([18, 23, 28, 33])), noise=float(rng.choice([0.0, 1.5, 3.0, 5.0, 8.0])),
        scenes=scenes, shots=shots, fade_in=fade_in, fade_out=fade_out,
    )


# ------------------------------------------------------------------------------------------------
# Hard cases (kind 'hard'): the classes a held-out corpus of hard footage found errors in (issue
# #27), each with enough instances per corpus that a per-class recall or false-cut count means
# something. Every hard video holds HARD_PER_VIDEO[class] instances of each class, shuffled.

# Transitions (the class is in the truth's 'class'; the kind is cut / dissolve / fade / wipe):
# - wipe: a vertical edge sweeping horizontally across the frame in 10-20 frames;
# - long_dissolve: a cross-dissolve of 40-60 frames;
# - dark_cut: a hard cut between two dark shots (exposure gain 0.15-0.3 on both);
# - same_location_cut: a cut to a nearby region of the same view (same photo, zoom within 10%,
#   window moved by 10-25% of its free range in x and y: the two framings overlap);
# - fade_out_in: fade out to black (6-24 frames), 0-12 black frames, fade in (6-24 frames);
# - cut, dissolve (8-30 frames): controls.
# In-shot traps (events, not transitions):
# - exposure_step: the exposure jumps by a factor 0.45-0.67 or 1.5-2.2 and stays;
# - fast_pan: the whole shot pans at 20-40 px/frame (640-px frame), mostly horizontally;
# - flash: 1-3 frames towards white (peak 0.4-0.95).
HARD_TRANSITIONS = ("wipe", "long_dissolve", "dark_cut", "same_location_cut", "fade_out_in", "cut", "dissolve")
HARD_TRAPS = ("exposure_step", "fast_pan", "flash")
HARD_PER_VIDEO = {"wipe": 3, "long_dissolve": 3, "dark_cut": 3, "same_location_cut": 3, "fade_out_in": 3, "cut": 2,
                  "dissolve": 1, "exposure_step": 3, "fast_pan": 3, "flash": 3}
# Classes that may separate two scenes (a cut to a nearby region of one view never does).
_SCENE_CHANGE_P = {"wipe": 0.4, "long_dissolve": 0.4, "fade_out_in": 0.8, "cut": 0.5, "dissolve": 0.4, "dark_cut": 0.25}


def _hard_into(rng, klass: str) -> tuple:
    if klass == "wipe":
        return ("wipe", int(rng.integers(10, 21)), int(rng.choice([-1, 1])))
    if klass == "long_dissolve":
        return ("dissolve", int(rng.integers(40, 61)))
    if klass == "dissolve":
        return ("dissolve", int(rng.integers(8, 31)))
    if klass == "fade_out_in":
        return ("fade", int(rng.integers(6, 25)), int(rng.integers(0, 13)), int(rng.integers(6, 25)))
    return ("cut",)


def _span(into: tuple) -> tuple[int, int]:
    """Frames a transition takes from the end of the shot before it and the start of the one after."""
    if into[0] in ("dissolve", "wipe"):
        return into[1], into[1]
    if into[0] == "fade":
        return into[1], into[3]
    return 0, 0


def plan_hard_video(index: int, photos: Sequence[Photo], cfg: CorpusConfig) -> Plan:
    """A hard-case video (see HARD_PER_VIDEO): scenes of 2-6 shots, one photo each, joined and
    cut by the hard transition classes, with the in-shot traps placed away from transitions."""
    rng = np.random.default_rng([cfg.seed, index, 27])
    klasses = [k for k in HARD_TRANSITIONS for _ in range(HARD_PER_VIDEO[k])]
    rng.shuffle(klasses)
    # Scene changes: after at least 2 shots in a scene, with a class-dependent chance; forced
    # after 6 shots when the class allows it.
    changes, in_scene = [], 1
    for k in klasses:
        p = _SCENE_CHANGE_P.get(k, 0.0)
        change = in_scene >= 2 and p > 0 and (rng.random() < p or in_scene >= 6)
        changes.append(bool(change))
        in_scene = 1 if change else in_scene + 1
    families = sorted({p.family for p in photos})
    n_scenes = 1 + sum(changes)
    order = [families[i] for i in rng.permutation(len(families))]
    chosen = []
    for s in range(n_scenes):  # distinct families while there are enough, never the same twice in a row
        fam = order[s % len(order)]
        if chosen and fam == chosen[-1]:
            fam = order[(s + 1) % len(order)]
        chosen.append(fam)
    scenes = []
    for fam in chosen:
        members = [i for i, p in enumerate(photos) if p.family == fam]
        sc = _scene(rng, members[int(rng.integers(len(members)))], False)
        sc["grey"], sc["contrast"] = False, 1.0  # the hard classes alone, not mixed with low contrast
        scenes.append(sc)
    # Shots: the transition into shot i+1 is klasses[i].
    n_shots = len(klasses) + 1
    scene_of = np.concatenate([[0], np.cumsum(changes)]).astype(int)
    intos = [("cut",)] + [_hard_into(rng, k) for k in klasses]
    shots: list[Shot] = []
    for i in range(n_shots):
        sc = scenes[scene_of[i]]
        head = _span(intos[i])[1]
        tail = _span(intos[i + 1])[0] if i + 1 < n_shots else 0
        length = max(_shot_length(rng, cfg, 0.8), head + tail + 24)
        prev = shots[-1] if shots else None
        klass = klasses[i - 1] if i else None
        if klass == "same_location_cut" and prev is not None:
            base = sc["setups"][prev.setup]
            sc["setups"].append(Setup(float(np.clip(base.zoom * rng.uniform(0.9, 1.1), 1.0, 3.0)),
                                      float(np.clip(base.cx + rng.choice([-1, 1]) * rng.uniform(0.1, 0.25), 0, 1)),
                                      float(np.clip(base.cy + rng.choice([-1, 1]) * rng.uniform(0.1, 0.25), 0, 1))))
            setup = len(sc["setups"]) - 1
        else:
            choices = [j for j in range(len(sc["setups"])) if prev is None or prev.scene != scene_of[i] or j != prev.setup] or [0]
            setup = int(rng.choice(choices))
        speed = rng.exponential(0.8)
        angle = rng.uniform(0, 2 * np.pi)
        shot = Shot(scene=int(scene_of[i]), photo=sc["photo"], setup=setup, frames=int(length),
                    pan=(float(speed * np.cos(angle)), float(speed * np.sin(angle) * 0.5)),
                    zoom_rate=0.0, shake=float(rng.uniform(0.5, 2.0)) if rng.random() < 0.2 else 0.0,
                    gains=_gains(rng, False), into=intos[i], klass=klass)
        if klass == "same_location_cut":
            shot.pan, shot.shake, shot.gains = prev.pan, 0.0, prev.gains  # the same camera, moved
        shots.append(shot)
    for i, k in enumerate(klasses):  # dark cuts: both shots dark
        if k == "dark_cut":
            for j in (i, i + 1):
                if max(shots[j].gains) > 0.35:
                    g = rng.uniform(0.15, 0.3) / shots[j].gains[1]
                    shots[j].gains = tuple(float(x * g) for x in shots[j].gains)
    # Traps, each in its own shot (never one next to a same-location cut, whose framing it would move).
    traps = [t for t in HARD_TRAPS for _ in range(HARD_PER_VIDEO[t])]
    rng.shuffle(traps)
    free = [i for i in range(n_shots)]
    rng.shuffle(free)
    for trap in traps:
        for j, i in enumerate(free):
            sh = shots[i]
            nxt = shots[i + 1] if i + 1 < n_shots else None
            head, tail = _span(sh.into)[1], (_span(nxt.into)[0] if nxt else 0)
            if trap == "fast_pan" and ("same_location_cut" in (sh.klass, nxt.klass if nxt else None) or max(sh.gains) < 0.35):
                continue
            if sh.frames - head - tail < 24:
                continue
            free.pop(j)
            lo, hi = head + 8, sh.frames - tail - 8
            if trap == "exposure_step":
                f = float(np.exp(rng.uniform(0.4, 0.8)) ** rng.choice([-1, 1]))
                sh.step = (int(rng.integers(lo, hi)), f)
            elif trap == "flash":
                sh.flashes.append((int(rng.integers(lo, hi - 3)), int(rng.integers(1, 4)), float(rng.uniform(0.4, 0.95))))
            else:
                sh.fast_pan = True
                sh.frames = int(min(sh.frames, max(head + tail + 24, 50)))
                speed = rng.uniform(20, 40) * cfg.width / 640
                angle = rng.uniform(-0.25, 0.25) + (np.pi if rng.random() < 0.5 else 0.0)
                sh.pan = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
                sh.shake = 0.0
                # Its own set-up, zoomed in far enough that the pan never reaches the photo's edge.
                travel = abs(sh.pan[0]) * sh.frames
                zoom = float(min(1.05 + travel / cfg.width, 6.0))
                scenes[sh.scene]["setups"].append(Setup(zoom, 0.0 if sh.pan[0] > 0 else 1.0, 0.5))
                sh.setup = len(scenes[sh.scene]["setups"]) - 1
            break
    return Plan(
        name=f"hard_{cfg.seed}_{index:03d}", kind="hard", width=cfg.width, height=cfg.height, fps=cfg.fps,
        crf=int(rng.choice([18, 23, 28])), noise=float(rng.choice([0.0, 1.5, 3.0])),
        scenes=scenes, shots=shots,
    )


def hard_config(seed: int = 2027, videos: int = 8, **kw) -> CorpusConfig:
    """The hard-case corpus (bench/shots.py --hard): with 8 videos, 24 instances of each class
    but the controls."""
    return CorpusConfig(seed=seed, videos=videos, kinds=(("hard", 1.0),), **kw)


# ------------------------------------------------------------------------------------------------
# Timeline: which shot frames make each output frame (pure)


def timeline(plan: Plan) -> tuple[list, dict]:
    """Per output frame a list of layers (shot index, local frame, weight) and a black-fade
    multiplier; and the ground truth (see `render_video`)."""
    frames: list = []  # [(layers, multiplier)]
    transitions, shot_starts, scene_starts, events = [], [0], [0], []
    for i, shot in enumerate(plan.shots):
        into = shot.into
        if i == 0:
            pre = plan.fade_in[0] if plan.fade_in else 0
            frames += [([], 0.0)] * pre
            for t in range(shot.frames):
                frames.append(([(i, t, 1.0)], 1.0))
            if plan.fade_in:
                n = plan.fade_in[1]
                for k in range(n):
                    layers, _ = frames[pre + k]
                    frames[pre + k] = (layers, (k + 1) / (n + 1))
                events.append({"kind": "fade_in_from_black", "first": 0, "last": pre + n - 1})
            continue
        scene_change = shot.scene != plan.shots[i - 1].scene
        pos = len(frames)
        if into[0] == "cut":
            frames += [([(i, t, 1.0)], 1.0) for t in range(shot.frames)]
            first, last, boundary = pos - 1, pos, pos
        elif into[0] in ("dissolve", "wipe"):
            d = into[1]
            start = pos - d  # the last d frames of the previous shot blend into this one's first d
            for k in range(d):
                a = (k + 1) / (d + 1)
                (prev_layers, m) = frames[start + k]
                if into[0] == "wipe":  # weights per column: ('wipe', progress, direction, incoming)
                    frames[start + k] = ([(j, t, ("wipe", a, into[2], False)) for j, t, _ in prev_layers] + [(i, k, ("wipe", a, into[2], True))], m)
                else:
                    frames[start + k] = ([(j, t, w * (1 - a)) for j, t, w in prev_layers] + [(i, k, a)], m)
            frames += [([(i, t, 1.0)], 1.0) for t in range(d, shot.frames)]
            first, last, boundary = start, start + d - 1, start + d // 2
        else:  # fade through black: out over the previous shot's tail, black, in over this one's head
            n_out, black, n_in = into[1], into[2], into[3]
            for k in range(n_out):
                layers, m = frames[pos - n_out + k]
                frames[pos - n_out + k] = (layers, m * (1 - (k + 1) / (n_out + 1)))
            frames += [([], 0.0)] * black
            head = len(frames)
            frames += [([(i, t, 1.0)], 1.0) for t in range(shot.frames)]
            for k in range(n_in):
                layers, m = frames[head + k]
                frames[head + k] = (layers, (k + 1) / (n_in + 1))
            first, last, boundary = pos - n_out, head + n_in - 1, head
        transitions.append({"kind": into[0], "first": first, "last": last, "scene_change": scene_change,
                            **({"class": shot.klass} if shot.klass else {})})
        shot_starts.append(boundary)
        if scene_change:
            scene_starts.append(boundary)
    n = len(frames)
    if plan.fade_out:
        k0 = n - plan.fade_out
        for k in range(plan.fade_out):
            layers, m = frames[k0 + k]
            frames[k0 + k] = (layers, m * (1 - (k + 1) / (plan.fade_out + 1)))
        events.append({"kind": "fade_out_to_black", "first": k0, "last": n - 1})
    # Flashes and ramps in output frame numbers (where the shot's frame is shown at full weight).
    where = {}
    for f, (layers, _) in enumerate(frames):
        for j, t, w in layers:
            if w == 1.0:
                where[(j, t)] = f
    for j, shot in enumerate(plan.shots):
        for t0, length, _ in shot.flashes:
            fs = [where[(j, t)] for t in range(t0, t0 + length) if (j, t) in where]
            if fs:
                events.append({"kind": "flash", "first": min(fs), "last": max(fs)})
        if shot.ramp:
            fs = [where[(j, t)] for t in range(shot.ramp[0], shot.ramp[0] + shot.ramp[1]) if (j, t) in where]
            if fs:
                events.append({"kind": "brightness_ramp", "first": min(fs), "last": max(fs), "factor": shot.ramp[2]})
        if shot.step and (j, shot.step[0]) in where and (j, shot.step[0] - 1) in where:
            f = where[(j, shot.step[0])]
            events.append({"kind": "exposure_step", "first": f - 1, "last": f, "factor": shot.step[1]})
        if shot.fast_pan:  # the pan's frames clear of transitions, 3 frames in from them
            fs = [f for t in range(shot.frames) if (f := where.get((j, t))) is not None and frames[f][1] == 1.0]
            events.append({"kind": "fast_pan", "first": min(fs) + 3, "last": max(fs) - 3,
                           "px_per_frame": float(np.hypot(*shot.pan))})

    def spans(starts):
        s = sorted(set(starts))
        return [[a, b - 1] for a, b in zip(s, s[1:] + [n])]

    truth = {
        "frames": n,
        "shots": spans(shot_starts),
        "scenes": spans(scene_starts),
        "transitions": transitions,
        "events": sorted(events, key=lambda e: e["first"]),
    }
    return frames, truth


# ------------------------------------------------------------------------------------------------
# Rendering


class _ShotRenderer:
    """Frames of one shot: the set-up's window on the photo, moving, with its colour transform."""

    def __init__(self, plan: Plan, shot: Shot, photo: Photo, seed: int) -> None:
        w, h = plan.width, plan.height
        sc = plan.scenes[shot.scene]
        setup = sc["setups"][shot.setup]
        ph, pw = photo.rgb.shape[:2]
        full_w = min(pw, ph * w / h)  # the largest window of the output aspect
        self.scale = w * setup.zoom / full_w  # photo -> output pixels
        self.img = cv2.resize(photo.rgb, (max(w, round(pw * self.scale)), max(h, round(ph * self.scale))), interpolation=cv2.INTER_AREA)
        big_h, big_w = self.img.shape[:2]
        self.x0 = setup.cx * (big_w - w)
        self.y0 = setup.cy * (big_h - h)
        self.w, self.h = w, h
        self.shot = shot
        rng = np.random.default_rng(seed)
        n = shot.frames + 1
        walk = np.cumsum(rng.normal(0, 1, (n, 2)), 0)
        walk -= np.linspace(0, 1, n)[:, None] * walk[-1]  # no drift: jitter around the path
        self.shake = walk / (np.abs(walk).max() + 1e-9) * shot.shake
        grey = sc["grey"]
        m = np.diag(shot.gains).astype(np.float64)
        if grey:
            m = np.outer(np.asarray(shot.gains), [0.299, 0.587, 0.114])
        mean = photo.rgb.reshape(-1, 3).mean(0)
        c = sc["contrast"]
        self.matrix = c * m
        self.offset = (1 - c) * (m @ mean)

    def frame(self, t: int, multiplier: float) -> np.ndarray:
        s = self.shot
        zoom = (1 + s.zoom_rate) ** t
        big_h, big_w = self.img.shape[:2]
        # Output pixel (u, v) shows image pixel (x + u / zoom, y + v / zoom); the window stays inside.
        vw, vh = self.w / zoom, self.h / zoom
        x = float(np.clip(self.x0 + s.pan[0] * t + self.shake[t, 0] + (self.w - vw) / 2, 0, max(big_w - vw, 0)))
        y = float(np.clip(self.y0 + s.pan[1] * t + self.shake[t, 1] + (self.h - vh) / 2, 0, max(big_h - vh, 0)))
        a = np.array([[1 / zoom, 0, x], [0, 1 / zoom, y]], np.float64)
        img = cv2.warpAffine(self.img, a, (self.w, self.h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        gain = multiplier
        if s.ramp and t >= s.ramp[0]:
            p = min(1.0, (t - s.ramp[0]) / max(s.ramp[1], 1))
            p = p * p * (3 - 2 * p)
            gain *= 1 + (s.ramp[2] - 1) * p
        if s.step and t >= s.step[0]:
            gain *= s.step[1]
        flash = 0.0
        for t0, length, peak in s.flashes:
            if t0 <= t < t0 + length:
                flash = peak * (1 - 0.5 * (t - t0) / length)
        mat = np.concatenate([self.matrix * gain * (1 - flash), (self.offset * gain * (1 - flash) + 255 * flash)[:, None]], 1)
        return cv2.transform(img, mat)


WIPE_EDGE = 4  # px: the wipe's edge is a 4-pixel ramp


def _layer_weight(w, width: int):
    """A layer's weight: a number, or for a wipe ('wipe', progress, direction, incoming) a weight
    per column [1, width, 1]: the incoming shot covers the part of the frame the edge has crossed."""
    if not isinstance(w, tuple):
        return w
    _, a, direction, incoming = w
    x = np.arange(width, dtype=np.float32)
    if direction < 0:
        x = width - 1 - x
    m = np.clip((a * (width + WIPE_EDGE) - x) / WIPE_EDGE, 0.0, 1.0)
    return (m if incoming else 1.0 - m)[None, :, None]


def render_video(plan: Plan, photos: Sequence[Photo], path: str, seed: int) -> dict:
    """Write the video to `path` (H.264 in MP4) and its ground truth to path + '.json'; return
    the truth: {frames, fps, shots, scenes, transitions, events, ...} with inclusive frame spans."""
    import av

    layers_per_frame, truth = timeline(plan)
    renderers = [_ShotRenderer(plan, s, photos[s.photo], seed * 1000 + i) for i, s in enumerate(plan.shots)]
    # Sensor noise: a bank of 16 Gaussian fields, one drawn (and maybe flipped) per frame; cheaper
    # than a fresh field per frame and, at 1-in-32 per frame, no visible pattern.
    cv2.setRNGSeed(seed)
    rng = np.random.default_rng(seed)
    bank = [np.empty((plan.height, plan.width, 3), np.int16) for _ in range(16 if plan.noise else 0)]
    for field in bank:
        cv2.randn(field, np.zeros(3), np.full(3, plan.noise))  # per channel: a scalar reaches only the first
    tmp = path + ".part.mp4"
    with av.open(tmp, "w") as out:
        stream = out.add_stream("libx264", rate=plan.fps)
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(plan.crf), "threads": "2"}
        for layers, mult in layers_per_frame:
            if not layers:
                img = np.zeros((plan.height, plan.width, 3), np.uint8)
            elif len(layers) == 1:
                j, t, _ = layers[0]
                img = renderers[j].frame(t, mult)
            else:
                acc = np.zeros((plan.height, plan.width, 3), np.float32)
                for j, t, wgt in layers:
                    acc += renderers[j].frame(t, mult).astype(np.float32) * _layer_weight(wgt, plan.width)
                img = np.clip(acc + 0.5, 0, 255).astype(np.uint8)
            if bank:
                field = bank[int(rng.integers(len(bank)))]
                if rng.random() < 0.5:
                    field = field[::-1, ::-1]
                img = np.clip(img.astype(np.int16) + field, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    truth.update({
        "name": plan.name, "kind": plan.kind, "fps": plan.fps, "width": plan.width, "height": plan.height,
        "crf": plan.crf, "noise_sigma": plan.noise, "generator_version": GENERATOR_VERSION,
        "photos": [photos[sc["photo"]].name for sc in plan.scenes],
        "scene_styles": [{"grey": sc["grey"], "contrast": sc["contrast"]} for sc in plan.scenes],
    })
    with open(path + ".json", "w") as f:
        json.dump(truth, f, indent=1)
    return truth


def build_corpus(workdir: str, cfg: CorpusConfig = CorpusConfig(), photos: Sequence[Photo] | None = None, log=None) -> list[dict]:
    """Generate (or reuse from `workdir`) the corpus; returns the truths with 'path' added.

    Videos are cached by (generator version, config, photo set): a changed photo set or config
    makes new files rather than reusing stale ones."""
    photos = list(photos) if photos is not None else photo_library()
    if len({p.family for p in photos}) < 2:
        raise RuntimeError("the corpus needs photos of at least two families (see bench/corpus.py's docstring)")
    key = hashlib.sha256(json.dumps([GENERATOR_VERSION, dataclasses.asdict(cfg), library_key(photos)]).encode()).hexdigest()[:10]
    folder = os.path.join(workdir, f"corpus_{cfg.seed}_{key}")
    os.makedirs(folder, exist_ok=True)
    items = []
    for i in range(cfg.videos):
        plan = plan_video(i, photos, cfg)
        path = os.path.join(folder, plan.name + ".mp4")
        if os.path.exists(path) and os.path.exists(path + ".json"):
            with open(path + ".json") as f:
                truth = json.load(f)
        else:
            truth = render_video(plan, photos, path, seed=cfg.seed * 10_000 + i)
            if log:
                log(f"{path}: {plan.kind}, {truth['frames']} frames, {len(truth['shots'])} shots, {len(truth['scenes'])} scenes")
        items.append({**truth, "path": path})
    return items


def summary(items: Sequence[dict]) -> dict:
    """Counts that describe a corpus (for the bench JSON)."""
    kinds: dict = {}
    for it in items:
        kinds[it["kind"]] = kinds.get(it["kind"], 0) + 1
    trans: dict = {}
    for it in items:
        for t in it["transitions"]:
            k = f"{t['kind']}_{'between' if t['scene_change'] else 'inside'}_scenes"
            trans[k] = trans.get(k, 0) + 1
    events: dict = {}
    for it in items:
        for e in it["events"]:
            events[e["kind"]] = events.get(e["kind"], 0) + 1
    classes: dict = {}
    for it in items:
        for t in it["transitions"]:
            if "class" in t:
                classes[t["class"]] = classes.get(t["class"], 0) + 1
    out = {"transitions_by_class": classes} if classes else {}
    return out | {
        "videos": len(items), "kinds": kinds, "frames": sum(it["frames"] for it in items),
        "transitions": sum(len(it["transitions"]) for it in items), "transitions_by_kind": trans,
        "scene_boundaries": sum(len(it["scenes"]) - 1 for it in items), "non_transition_events": events,
        "photos_used": len({p for it in items for p in it["photos"]}),
    }


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(HERE, "out", "corpus"))
    parser.add_argument("--videos", type=int, default=None, help="default 40 (8 with --hard)")
    parser.add_argument("--seed", type=int, default=None, help="default 2026 (2027 with --hard)")
    parser.add_argument("--hard", action="store_true", help="the hard-case corpus (plan_hard_video) instead")
    args = parser.parse_args(argv)
    photos = photo_library()
    print(f"{len(photos)} photos in {len({p.family for p in photos})} families", file=sys.stderr)
    if args.hard:
        cfg = hard_config(**{k: v for k, v in (("seed", args.seed), ("videos", args.videos)) if v is not None})
    else:
        cfg = CorpusConfig(seed=CorpusConfig.seed if args.seed is None else args.seed,
                           videos=CorpusConfig.videos if args.videos is None else args.videos)
    items = build_corpus(args.workdir, cfg, photos, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(summary(items), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
