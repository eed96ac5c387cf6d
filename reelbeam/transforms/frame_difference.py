"""Per-frame difference signals from the decode pass, for confirming shot cuts.

The kind of signal PySceneDetect's adaptive detector thresholds: how much frame t differs from
frame t-1, taken on a grid of the decoded (full-resolution) planes rather than on TransNetV2's
48x27 frames, where a cut between two views of similar content can nearly vanish. The grid is a
point sample of the luma and chroma planes with a stride chosen so that about `grid_width`
columns are read (default 64), which is what PySceneDetect's downscaling does
(`frame[::k, ::k]`, effective width 256); it needs no pixel conversion, so it costs the same at any
resolution: one compiled call per frame (docs/BENCHMARKS.md: 64 columns detect as well as 128 or
256 on the development corpus and cost about 40% of 128).

Per frame (frame 0 compares with itself: zeros):
- `diff_luma`: mean |Y_t - Y_{t-1}| over the grid (0..255);
- `diff_chroma`: mean of |U_t - U_{t-1}| and |V_t - V_{t-1}| (0..255; 0 for greyscale);
- `luma_mean`, `luma_std`: brightness and contrast of frame t on the grid (fades, black frames);
- `luma_corr`: correlation of frame t's and t-1's luma grids (1 = same picture up to a gain and an
  offset: a fade or a brightness ramp changes `diff_luma` but not this; a cut drops it);
- `corr_lag{k}` for k in `LAGS` (2 ... 64): correlation of frame t's and frame t-k's coarse luma
  (the grid averaged in blocks to about 16 columns; NaN for t < k). They let the shot rule ask
  whether the frames on both sides of a detected transition of any length up to 62 frames are the
  same picture up to brightness (a flash, a brightness ramp) rather than two shots;
- `diff_x_centre`, `diff_x_spread`, `diff_y_centre`, `diff_y_spread`: where frame t's luma change
  lies: the centre and spread of |Y_t - Y_{t-1}| over the grid's columns and rows, as fractions of
  the frame (0.5 and 0.29 for a change spread evenly, or none). Local against global change: a
  wipe's change is a narrow band that moves across the frame, a dissolve's, a pan's or an
  exposure change's is spread out.

`FrameDifferenceConsumer` emits them in chunks as ('per_video', VideoPart(video_id, 'frame_difference',
{'frame_idx': int32 [n], name: float32 [n], ...})), the part kind the shot stage declares. 8-bit planar YUV (4:2:0, 4:2:2, 4:4:4, their
full-range 'yuvj' forms), NV12 and grey are read in place; other formats (10-bit, RGB, ...) go
through one small RGB conversion per frame.
"""

from __future__ import annotations

import numba
import numpy as np

from reelbeam.schemas import rows
from reelbeam.transforms.decode import ChunkedConsumer, FrameView, StreamInfo

LAGS = (2, 4, 8, 16, 32, 64)
SPATIAL = ("diff_x_centre", "diff_x_spread", "diff_y_centre", "diff_y_spread")
SIGNALS = ("diff_luma", "diff_chroma", "luma_mean", "luma_std", "luma_corr", *(f"corr_lag{k}" for k in LAGS), *SPATIAL)
UNIFORM_SPREAD = 0.2887  # the spread of a change spread evenly over the frame (1 / sqrt(12))
COARSE_COLUMNS = 16
DEFAULT_GRID_WIDTH = 64
_PLANAR = {"yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1), "yuv444p": (1, 1), "yuvj444p": (1, 1)}


def grid_step(width: int, height: int, grid_width: int = DEFAULT_GRID_WIDTH) -> int:
    """The sampling stride (>= 1) that reads about `grid_width` columns of a `width`-wide frame."""
    return max(1, round(max(width, height * 16 / 9) / grid_width))


@numba.njit(cache=True, nogil=True)
def _frame_signals(y, step, prev_y, prev_sums, c0, c1, cstep_y, cstep_x, coff0, coff1, cstride, prev_c0, prev_c1,
                   coarse, block, cell, ring, pos, filled, lags, out):  # pragma: no cover - compiled
    """All signals of one frame in one call (the consumer's cost is mostly per-call overhead):
    samples the luma plane every `step` pixels against `prev_y`, the two chroma planes (or one
    interleaved NV12 plane read with `cstride` 2 and offsets 0/1) against `prev_c*`, averages the
    luma grid into `coarse` cells, stores it in `ring[pos]` and correlates it with the frames `lags`
    back, and locates the luma change (centre and spread in x and y). Writes SIGNALS' values into
    `out`; overwrites the previous-frame grids. The numpy
    reference is `luma_grid_stats`, `coarse_grid` and `correlation`."""
    gh, gw = prev_y.shape
    coarse[:, :] = 0.0
    # Integer sums (exact, and faster than floats); the previous grid's sum and sum of squares are
    # the previous call's, kept in prev_sums.
    sd = 0
    s = 0
    ss = 0
    sx = 0
    dj = 0.0
    djj = 0.0
    di = 0.0
    dii = 0.0
    for i in range(gh):
        row = y[i * step]
        prow = prev_y[i]
        ci = i // block
        fi = (i + 0.5) / gh
        rd = 0
        for j in range(gw):
            v = np.int64(row[j * step])
            p = np.int64(prow[j])
            ad = abs(v - p)
            sd += ad
            rd += ad
            fj = (j + 0.5) / gw
            dj += ad * fj
            djj += ad * fj * fj
            s += v
            ss += v * v
            sx += v * p
            prow[j] = row[j * step]
            coarse[ci, j // block] += v
        di += rd * fi
        dii += rd * fi * fi
    ps = prev_sums[0]
    pss = prev_sums[1]
    prev_sums[0] = s
    prev_sums[1] = ss
    n = gh * gw
    mean = s / n
    var = max(ss / n - mean * mean, 0.0)
    pmean = ps / n
    pvar = max(pss / n - pmean * pmean, 0.0)
    if var < 1.0 and pvar < 1.0:
        corr = 1.0
    elif var < 1.0 or pvar < 1.0:
        corr = 0.0
    else:
        corr = min(1.0, max(-1.0, (sx / n - mean * pmean) / np.sqrt(var * pvar)))
    ch, cw = prev_c0.shape
    dc = 0
    for i in range(ch):
        r0 = c0[i * cstep_y]
        r1 = c1[i * cstep_y]
        p0 = prev_c0[i]
        p1 = prev_c1[i]
        for j in range(cw):
            a = np.int64(r0[j * cstep_x * cstride + coff0])
            b = np.int64(r1[j * cstep_x * cstride + coff1])
            dc += abs(a - np.int64(p0[j])) + abs(b - np.int64(p1[j]))
            p0[j] = a
            p1[j] = b
    out[0] = sd / n
    out[1] = dc / (2 * ch * cw) if ch * cw > 0 else 0.0
    # Where the luma change lies: its centre and spread across the columns and the rows (fractions
    # of the frame; a change spread evenly: centre 0.5, spread 0.29). A wipe's change is a narrow
    # band moving across; a dissolve's, a pan's or an exposure change's is spread out.
    ns = 5 + len(lags)
    if sd > 0:
        mx = dj / sd
        my = di / sd
        out[ns] = mx
        out[ns + 1] = np.sqrt(max(djj / sd - mx * mx, 0.0))
        out[ns + 2] = my
        out[ns + 3] = np.sqrt(max(dii / sd - my * my, 0.0))
    else:
        out[ns] = 0.5
        out[ns + 1] = 0.2887
        out[ns + 2] = 0.5
        out[ns + 3] = 0.2887
    out[2] = mean
    out[3] = np.sqrt(var)
    out[4] = corr
    # Coarse grid into the ring, then its correlations with earlier frames.
    size = ring.shape[0]
    m = ring.shape[1]
    cur = ring[pos]
    k = 0
    for i in range(coarse.shape[0]):
        for j in range(coarse.shape[1]):
            cur[k] = coarse[i, j] / cell[k]
            k += 1
    sa = 0.0
    saa = 0.0
    for q in range(m):
        sa += cur[q]
        saa += cur[q] * cur[q]
    va = saa / m - (sa / m) ** 2
    for li in range(len(lags)):
        lag = lags[li]
        if lag > filled:
            out[5 + li] = np.nan
            continue
        b = ring[(pos - lag) % size]
        sb = 0.0
        sbb = 0.0
        sab = 0.0
        for q in range(m):
            sb += b[q]
            sbb += b[q] * b[q]
            sab += cur[q] * b[q]
        vb = sbb / m - (sb / m) ** 2
        if va < 1.0 and vb < 1.0:
            out[5 + li] = 1.0
        elif va < 1.0 or vb < 1.0:
            out[5 + li] = 0.0
        else:
            out[5 + li] = (sab / m - (sa / m) * (sb / m)) / np.sqrt(va * vb)


def _finish(sd, s, ss, sx, ps, pss, n) -> tuple[float, float, float, float]:
    mean = s / n
    var = max(ss / n - mean * mean, 0.0)
    pmean = ps / n
    pvar = max(pss / n - pmean * pmean, 0.0)
    cov = sx / n - mean * pmean
    # Flat frames (black, a flash at full white): correlation is undefined; 1 when both are flat
    # (nothing changed in structure), 0 when one is.
    if var < 1.0 and pvar < 1.0:
        corr = 1.0
    elif var < 1.0 or pvar < 1.0:
        corr = 0.0
    else:
        corr = cov / np.sqrt(var * pvar)
    return sd / n, mean, float(np.sqrt(var)), float(np.clip(corr, -1.0, 1.0))


def coarse_grid(grid: np.ndarray, block: int) -> np.ndarray:
    """Mean of a grid over `block` x `block` cells (partial cells at the edges averaged as they are)."""
    gh, gw = grid.shape
    ch, cw = -(-gh // block), -(-gw // block)
    sums = np.zeros((ch, cw))
    np.add.at(sums, (np.arange(gh)[:, None] // block, np.arange(gw)[None, :] // block), grid.astype(np.float64))
    counts = np.zeros((ch, cw))
    np.add.at(counts, (np.arange(gh)[:, None] // block, np.arange(gw)[None, :] // block), 1.0)
    return sums / counts


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two pictures, with the consumer's convention for flat ones (variance
    under 1 grey level squared): 1 when both are flat, 0 when one is."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    va, vb = a.var(), b.var()
    if va < 1.0 and vb < 1.0:
        return 1.0
    if va < 1.0 or vb < 1.0:
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / np.sqrt(va * vb))


def luma_grid_stats(y: np.ndarray, step: int, prev: np.ndarray) -> tuple[float, float, float, float]:
    """Numpy reference of the compiled kernel: (diff_luma, luma_mean, luma_std, luma_corr) of the
    grid y[::step, ::step] (cut to prev's shape) against `prev`; `prev` is overwritten."""
    g = y[::step, ::step][: prev.shape[0], : prev.shape[1]].astype(np.float64)
    p = prev.astype(np.float64)
    n = g.size
    out = _finish(np.abs(g - p).sum(), g.sum(), (g * g).sum(), (g * p).sum(), p.sum(), (p * p).sum(), n)
    prev[...] = g.astype(prev.dtype)
    return out


def _plane(frame, k: int, rows: int, cols: int, dtype=np.uint8) -> np.ndarray:
    p = frame.planes[k]
    a = np.frombuffer(p, dtype)
    return a.reshape(-1, p.line_size // a.itemsize)[:rows, :cols]


class FrameDifferenceConsumer(ChunkedConsumer):
    """Per-frame difference signals (module docstring) on a point grid of the decoded planes, in
    chunks of `chunk` frames (part 'frame_difference'). Keeps two small grids per video."""

    part = "frame_difference"

    def __init__(self, grid_width: int = DEFAULT_GRID_WIDTH, chunk: int = 8192) -> None:
        if grid_width < 8:
            raise ValueError(f"grid_width must be >= 8, got {grid_width}")
        super().__init__(chunk)
        self._grid_width = grid_width

    def begin(self, info: StreamInfo) -> None:
        self._step: int | None = None

    def _setup(self, frame) -> None:
        w, h = frame.width, frame.height
        fmt = frame.format.name
        step = grid_step(w, h, self._grid_width)
        self._mode = "planar" if fmt in _PLANAR else "nv12" if fmt == "nv12" else "gray" if fmt == "gray" else "rgb"
        if self._mode == "rgb":
            # One small conversion per frame; its planes are then read with step 1.
            self._rgb_size = (max(1, w // step), max(1, h // step))
            step = 1
            gh, gw = self._rgb_size[1], self._rgb_size[0]
            self._cstep, sub = (1, 1), (1, 1)
            ch, cw = gh, gw
        else:
            gh, gw = -(-h // step), -(-w // step)
            sub = _PLANAR.get(fmt, (2, 2))
            self._cstep = (max(1, step // sub[1]), max(1, step // sub[0]))
            ch, cw = -(-(h // sub[1]) // self._cstep[0]), -(-(w // sub[0]) // self._cstep[1])
            if self._mode == "gray":
                ch = cw = 0
        self._step = step
        self._sub = sub
        self._prev_y = np.zeros((gh, gw), np.uint8)
        self._prev_sums = np.zeros(2, np.int64)
        self._prev_c = [np.zeros((ch, cw), np.uint8) for _ in range(2)]
        self._block = max(1, -(-gw // COARSE_COLUMNS))
        self._coarse = np.zeros((-(-gh // self._block), -(-gw // self._block)))
        # Block sums -> means: cells at the edges may be partial.
        rows = np.minimum(self._block, gh - np.arange(self._coarse.shape[0]) * self._block)
        cols = np.minimum(self._block, gw - np.arange(self._coarse.shape[1]) * self._block)
        self._cell = (rows[:, None] * cols[None, :]).astype(np.float64).ravel()
        self._ring = np.zeros((max(LAGS) + 1, self._coarse.size))
        self._ring_pos = -1
        self._ring_filled = -1
        self._lags = np.asarray(LAGS, np.int64)
        self._out = np.zeros(len(SIGNALS))
        self._dummy = np.zeros((1, 1), np.uint8)
        self._first = True

    def measure(self, view: FrameView) -> np.ndarray:
        frame = view.frame
        shape = (frame.width, frame.height, frame.format.name)
        if self._step is None or shape != self._shape:
            # (A stream whose frames change size or format starts over: never read out of bounds.)
            self._setup(frame)
            self._shape = shape
        if self._mode == "rgb":
            rgb = view.rgb(*self._rgb_size, "AREA").astype(np.float32)
            yuv = rgb @ np.array([[0.299, -0.169, 0.5], [0.587, -0.331, -0.419], [0.114, 0.5, -0.081]], np.float32)
            y = np.clip(yuv[..., 0] + 0.5, 0, 255).astype(np.uint8)
            c0, c1 = (np.clip(yuv[..., k] + 128.5, 0, 255).astype(np.uint8) for k in (1, 2))
            offsets, stride = (0, 0), 1
        else:
            y = _plane(frame, 0, frame.height, frame.width)
            sx, sy = self._sub
            if self._mode == "planar":
                c0 = _plane(frame, 1, frame.height // sy, frame.width // sx)
                c1 = _plane(frame, 2, frame.height // sy, frame.width // sx)
                offsets, stride = (0, 0), 1
            elif self._mode == "nv12":
                c0 = c1 = _plane(frame, 1, frame.height // 2, frame.width)
                offsets, stride = (0, 1), 2
            else:
                c0 = c1 = self._dummy
                offsets, stride = (0, 0), 1
        self._ring_pos = (self._ring_pos + 1) % len(self._ring)
        self._ring_filled = min(self._ring_filled + 1, len(self._ring) - 1)
        out = self._out
        _frame_signals(y, self._step, self._prev_y, self._prev_sums, c0, c1, self._cstep[0], self._cstep[1], offsets[0], offsets[1], stride,
                       self._prev_c[0], self._prev_c[1], self._coarse, self._block, self._cell, self._ring,
                       self._ring_pos, self._ring_filled, self._lags, out)
        if self._first:  # frame 0 compares with nothing: no difference, full correlation
            self._first = False
            out[0] = out[1] = 0.0
            out[4] = 1.0
            out[5 + len(LAGS):] = (0.5, UNIFORM_SPREAD, 0.5, UNIFORM_SPREAD)
        return out.copy()

    def columns(self, values: list) -> dict:
        cols = np.asarray(values, np.float32).reshape(-1, len(SIGNALS))  # values: float64 [len(SIGNALS)]
        return {k: cols[:, i].copy() for i, k in enumerate(SIGNALS)}


def concat_chunks(chunks: list[dict]) -> dict[str, np.ndarray]:
    """The per-video chunks (any order) -> one array per signal, in frame order (empty arrays for a
    video without chunks)."""
    if not chunks:
        return {k: np.zeros(0, np.float32) for k in ("frame_idx", *SIGNALS)}
    return rows.concat_chunks(chunks)
