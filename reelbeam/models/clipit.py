"""CLIP-It language-guided frame scoring (ModelScope `damo/cv_clip-it_video-summarization_language-guided_en`):
the scoring Transformer with the published checkpoint's module tree, its loading, and the text
block it reads. Spec: reference/cmd_clipit.md B.2-B.4 and reference/NOTES.md (CLIP-It).

- `ClipIt`: CLIP frame features [B, N, 512] (L2-normalised per frame) and a text block
  [B, 1, 3584] -> per-frame importance [B, N] in (0, 1). Forward (the reference's encoder branch):
  `linear_txt` 3584 -> 512; language-guided attention (4 heads, d_k = d_v = 256; Q = frames,
  K = V = the text token; residual + post-LayerNorm); + the position table; LayerNorm; 6 post-norm
  encoder layers (8 heads, d_k = d_v = 256, FFN 2048, ReLU); regressor LayerNorm -> Linear 512 ->
  ReLU -> LayerNorm -> Linear 1 -> sigmoid. The reference's dropouts (0.1 on attention weights,
  attention and feed-forward outputs and after the position table; 0.5 before each regressor
  LayerNorm) act in train mode only (`reelbeam train summaries`); eval mode is the inference path.
- The checkpoint also holds a 6-layer decoder, whose output the reference computes and discards,
  and three input LayerNorms it never calls (`layer_norm_img_src`, `layer_norm_img_trg`,
  `layer_norm_txt`). They are in the module tree, so the published `pytorch_model.pt` loads with
  `strict=True`; `load_clipit` then drops the decoder (62.9 M of the 104.9 M parameters) unless
  asked to keep it. The model runs in eval mode (the reference's pipeline calls `.eval()`).
- `pos_table` (`encoder.position_enc.pos_table`, [1, 4000, 512]) is a buffer read from the
  checkpoint, never recomputed: a file whose table is not the sinusoid scores as the reference
  scores it. It also bounds a video to 4000 sampled frames (~33 min at 1 frame in 15 at 30 fps).
- `text_block`: the reference's 7-sentence rule, made deterministic (see its docstring), as ONE
  3584-d vector L2-normalised as a whole (not per sentence).
- `video_text_block`: the query-less text this project uses (see its docstring); the reference
  instead captions the video with BMT (I3D + VGGish features, a proposal generator and a
  captioner) and feeds those captions through `text_block`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reelbeam.models.checkpoints import (
    CheckpointError,
    compare_keys,
    expected_shapes,
    load_checkpoint,
    tensor_shapes,
)
from reelbeam.schemas.rows import l2_normalize_rows

NUM_SENTENCES = 7
CLIP_DIM = 512
DROPOUT = 0.1  # the reference's dropout in attention, feed-forward and after the position table
REGRESSOR_DROPOUT = 0.5  # before each of the regressor's LayerNorms


@dataclasses.dataclass(frozen=True)
class ClipItConfig:
    """The reference `Transformer()`'s defaults (the published model). Other values exist only so
    tests can build tiny models with the same code. d_model equals d_frame, as the reference asserts."""

    num_sentence: int = NUM_SENTENCES
    d_frame: int = CLIP_DIM
    d_inner: int = 2048
    n_layers: int = 6
    n_head: int = 8
    d_k: int = 256
    d_v: int = 256
    txt_heads: int = 4
    n_position: int = 4000

    @property
    def d_text(self) -> int:
        return self.num_sentence * self.d_frame


class _MultiHeadAttention(nn.Module):
    """Bias-free projections, softmax(Q K^T / sqrt(d_k)) V, fc, residual (the query), LayerNorm."""

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int) -> None:
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        b, lq, lk = q.shape[0], q.shape[1], kv.shape[1]
        h = self.n_head
        qh = self.w_qs(q).view(b, lq, h, self.d_k).transpose(1, 2)
        kh = self.w_ks(kv).view(b, lk, h, self.d_k).transpose(1, 2)
        vh = self.w_vs(kv).view(b, lk, h, self.d_v).transpose(1, 2)
        # scale 1/sqrt(d_k): the reference's temperature; dropout 0.1 on the weights in train mode
        out = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=DROPOUT if self.training else 0.0)
        out = F.dropout(self.fc(out.transpose(1, 2).reshape(b, lq, h * self.d_v)), DROPOUT, self.training)
        return self.layer_norm(out + q)


class _FeedForward(nn.Module):
    def __init__(self, d_in: int, d_hid: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_in, d_hid)
        self.w_2 = nn.Linear(d_hid, d_in)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(F.dropout(self.w_2(F.relu(self.w_1(x))), DROPOUT, self.training) + x)


class _EncoderLayer(nn.Module):
    def __init__(self, cfg: ClipItConfig) -> None:
        super().__init__()
        self.slf_attn = _MultiHeadAttention(cfg.n_head, cfg.d_frame, cfg.d_k, cfg.d_v)
        self.pos_ffn = _FeedForward(cfg.d_frame, cfg.d_inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_ffn(self.slf_attn(x, x))


class _DecoderLayer(nn.Module):
    """Weights only: the reference discards the decoder's output."""

    def __init__(self, cfg: ClipItConfig) -> None:
        super().__init__()
        self.slf_attn = _MultiHeadAttention(cfg.n_head, cfg.d_frame, cfg.d_k, cfg.d_v)
        self.enc_attn = _MultiHeadAttention(cfg.n_head, cfg.d_frame, cfg.d_k, cfg.d_v)
        self.pos_ffn = _FeedForward(cfg.d_frame, cfg.d_inner)


def sinusoid_table(n_position: int, d_hid: int) -> torch.Tensor:
    """[1, n_position, d_hid] float32: sin on even, cos on odd dims of pos / 10000^(2 (i // 2) / d).
    Only the initial value of `pos_table`; a loaded checkpoint's table replaces it."""
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    i = np.arange(d_hid)
    angle = pos / np.power(10000, 2 * (i // 2) / d_hid)[None, :]
    angle[:, 0::2] = np.sin(angle[:, 0::2])
    angle[:, 1::2] = np.cos(angle[:, 1::2])
    return torch.from_numpy(angle.astype(np.float32))[None]


class _PositionalEncoding(nn.Module):
    def __init__(self, d_hid: int, n_position: int) -> None:
        super().__init__()
        self.register_buffer("pos_table", sinusoid_table(n_position, d_hid))


class _Encoder(nn.Module):
    def __init__(self, cfg: ClipItConfig) -> None:
        super().__init__()
        self.position_enc = _PositionalEncoding(cfg.d_frame, cfg.n_position)
        self.layer_stack = nn.ModuleList([_EncoderLayer(cfg) for _ in range(cfg.n_layers)])
        self.layer_norm = nn.LayerNorm(cfg.d_frame, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.position_enc.pos_table[:, : x.shape[1]].to(x.dtype)
        x = self.layer_norm(F.dropout(x, DROPOUT, self.training))
        for layer in self.layer_stack:
            x = layer(x)
        return x


class _Decoder(nn.Module):
    def __init__(self, cfg: ClipItConfig) -> None:
        super().__init__()
        self.position_enc = _PositionalEncoding(cfg.d_frame, cfg.n_position)
        self.layer_stack = nn.ModuleList([_DecoderLayer(cfg) for _ in range(cfg.n_layers)])
        self.layer_norm = nn.LayerNorm(cfg.d_frame, eps=1e-6)


class ClipIt(nn.Module):
    """The CLIP-It scorer, with the module names of the published checkpoint (its `state_dict`
    keys are the file's keys: reference/cmd_clipit.md B.4)."""

    def __init__(self, config: ClipItConfig = ClipItConfig()) -> None:
        super().__init__()
        cfg = self.config = config
        d = cfg.d_frame
        self.layer_norm_img_src = nn.LayerNorm(d, eps=1e-6)  # unused, as in the reference
        self.layer_norm_img_trg = nn.LayerNorm(d, eps=1e-6)  # unused
        self.layer_norm_txt = nn.LayerNorm(cfg.d_text, eps=1e-6)  # unused
        self.linear_txt = nn.Linear(cfg.d_text, d)
        self.lg_attention = _MultiHeadAttention(cfg.txt_heads, d, cfg.d_k, cfg.d_v)
        self.encoder = _Encoder(cfg)
        self.decoder: _Decoder | None = _Decoder(cfg)
        self.linear_1 = nn.Linear(d, d)
        self.linear_2 = nn.Linear(d, 1)
        self.norm_y = nn.LayerNorm(d, eps=1e-6)
        self.norm_linear = nn.LayerNorm(d, eps=1e-6)

    def forward(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """frames [B, N, d_frame] (L2-normalised rows), text [B, T, d_text] (T = 1 at inference)
        -> importance [B, N] in (0, 1)."""
        if frames.shape[1] > self.config.n_position:
            raise ValueError(
                f"CLIP-It scores at most {self.config.n_position} sampled frames per video (its position "
                f"table), got {frames.shape[1]}: sample fewer frames per second for long videos"
            )
        x = self.encoder(self.lg_attention(frames, self.linear_txt(text)))
        y = F.relu(self.linear_1(self.norm_y(F.dropout(x, REGRESSOR_DROPOUT, self.training))))
        y = self.norm_linear(F.dropout(y, REGRESSOR_DROPOUT, self.training))
        return torch.sigmoid(self.linear_2(y)).squeeze(-1)


# ------------------------------------------------------------------------------------------------
# Loading


def load_clipit(
    path: str, device: str = "cpu", config: ClipItConfig = ClipItConfig(), keep_decoder: bool = False
) -> ClipIt:
    """The ModelScope `pytorch_model.pt` (local path or fsspec URL), loaded as the reference's
    `TorchModel._load_pretrained` does: `torch.load(weights_only=True)`, the entry under 'params'
    if there is one, any 'module.' prefix stripped, `load_state_dict(strict=True)`. Eval mode.

    Raises CheckpointError naming the missing and unexpected keys (or wrong shapes).
    keep_decoder=False drops the decoder after the strict load (the forward never uses it).
    """
    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and "params" in obj:
        obj = obj["params"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors (a CLIP-It pytorch_model.pt)")
    state = {(k.removeprefix("module.")): v for k, v in obj.items()}
    with torch.device("meta"):
        model = ClipIt(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path} is not a CLIP-It scoring checkpoint of this configuration: missing {_brief(missing)}, "
            f"unexpected {_brief(unexpected)}, wrong shapes {_brief(shapes)}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    if not keep_decoder:
        model.decoder = None
    return model.eval().to(device)


def inspect_clipit(path: str, shapes: Mapping[str, tuple] | None = None) -> None:
    """Check `path` by its tensor names and shapes alone (no weights read; `shapes`: its
    `tensor_shapes` when already read), as `load_clipit` would load it ('params' unwrapped,
    'module.' stripped); CheckpointError (one line) when it is not the scoring transformer."""
    shapes = tensor_shapes(path) if shapes is None else shapes
    shapes = {k.removeprefix("module."): v for k, v in shapes.items()}
    compare_keys(path, shapes, expected_shapes(ClipIt), "CLIP-It scoring transformer")


def _brief(items: list, n: int = 4) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return f"{items[:n]}{more}"


# ------------------------------------------------------------------------------------------------
# Text blocks and scoring


def sentence_indices(num_sentences: int, block: int = NUM_SENTENCES) -> list[int]:
    """Which of `num_sentences` sentence features make up the text block (length `block`).

    Fewer than `block`: all of them, then the last repeated (the reference's rule). Exactly
    `block`: as given. More: `block` evenly spaced indices from the first to the last,
    i * (n - 1) // (block - 1), distinct and increasing. The reference draws `block` distinct
    indices at random, unseeded, and sorts them; spreading them evenly keeps the order and covers
    the whole list of sentences (dense captions are in time order) the same way on every run.
    """
    if num_sentences < 1:
        raise ValueError("a CLIP-It text block needs at least one sentence")
    if num_sentences <= block:
        return list(range(num_sentences)) + [num_sentences - 1] * (block - num_sentences)
    return [i * (num_sentences - 1) // (block - 1) for i in range(block)]


def text_block(sentence_features: np.ndarray, num_sentences: int = NUM_SENTENCES) -> np.ndarray:
    """CLIP text features of k sentences [k, 512] -> the model's text input [7 * 512] float32:
    the sentences chosen by `sentence_indices`, concatenated, and divided by the L2 norm of the
    whole concatenation (as the reference's `norm_feature` on its (1, 3584) array)."""
    feats = np.asarray(sentence_features, dtype=np.float32)
    if feats.ndim != 2 or len(feats) == 0:
        raise ValueError(
            f"a CLIP-It text block needs at least one sentence feature [k >= 1, D], got {feats.shape}"
        )
    return l2_normalize_rows(feats[sentence_indices(len(feats), num_sentences)].reshape(1, -1))[0]


def video_text_block(frame_features: np.ndarray, num_sentences: int = NUM_SENTENCES) -> np.ndarray:
    """The query-less text: the video's own mean (L2-normalised) CLIP frame feature as the single
    'sentence' (so repeated 7 times), normalised as one block like `text_block`.

    The reference has no query-less scorer of its own: it generates captions with BMT (dense video
    captioning on I3D RGB + flow and VGGish audio features) and uses those as the sentences. Here
    the importance is the model's score against what the video is about on average: frames that
    carry the video's main content score by the same learned head, with no captioner (BMT needs
    TensorFlow, I3D, PWC-Net and unpublished wheels). With one text token the language-guided
    attention adds the same vector to every frame, so the text acts as a video-level context; an
    image feature is not a caption feature (CLIP's image and text embeddings occupy different
    regions), so treat these scores as a ranking within the video, not as comparable to
    query-guided scores.
    """
    frames = l2_normalize_rows(frame_features)
    return text_block(frames.mean(axis=0, keepdims=True), num_sentences)


@torch.inference_mode()
def score_frames(model: ClipIt, frame_features: np.ndarray, text: np.ndarray) -> np.ndarray:
    """CLIP image features of a video's sampled frames [N, 512] and a text block [3584] (from
    `text_block`) -> importance float32 [N] in (0, 1). A [Q, 3584] stack of text blocks scores Q
    queries in one batch -> [Q, N]. The frames are L2-normalised per frame here, as the
    reference's `norm_feature`."""
    frames = torch.from_numpy(l2_normalize_rows(frame_features))
    texts = torch.as_tensor(np.asarray(text, dtype=np.float32))
    single = texts.ndim == 1
    texts = texts.reshape(-1, 1, texts.shape[-1])
    param = next(model.parameters())
    x = frames[None].expand(len(texts), -1, -1).to(param.device, param.dtype)
    y = model(x, texts.to(param.device, param.dtype)).float().cpu().numpy()
    return y[0] if single else y


def num_parameters(model: nn.Module) -> int:
    """Parameters of `model` (meta-device models included)."""
    return sum(p.numel() for p in model.parameters())
