"""Literal copies of the reference code the CLIP-It tests compare against (not used by reelbeam).

- KTS as ModelScope ships it (modelscope/models/cv/video_summarization/kts, commit 2905da12,
  Apache-2.0; itself from TatsuyaShirakawa/KTS) and KTS's original Cython loops, as plain Python;
- ModelScope's `get_change_points`, `knap_sack`, `generate_summary`, `transform_time`,
  `summary_format` (video_summarization/summarizer.py) and the CLIP-It pipeline's `norm_feature`;
- the CLIP-It scoring Transformer (language_guided_video_summarization/transformer/*.py, from
  jadore801120/attention-is-all-you-need-pytorch), with its defaults made arguments so tiny
  models can be built.

Only formatting was changed (`verbose` printing removed), so that a difference between these and
reelbeam is a difference from the reference.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------------------
# KTS, ModelScope's copy


def calc_scatters(K):
    n = K.shape[0]
    K1 = np.cumsum([0] + list(np.diag(K)))
    K2 = np.zeros((n + 1, n + 1))
    K2[1:, 1:] = np.cumsum(np.cumsum(K, 0), 1)
    diagK2 = np.diag(K2)
    i = np.arange(n).reshape((-1, 1))
    j = np.arange(n).reshape((1, -1))
    ij_f32 = (j - i + 1).astype(np.float32) + (j == i - 1).astype(np.float32)
    diagK2_K2 = diagK2[1:].reshape((1, -1)) + diagK2[:-1].reshape((-1, 1)) - K2[1:, :-1].T - K2[:-1, 1:]
    scatters = K1[1:].reshape((1, -1)) - K1[:-1].reshape((-1, 1)) - diagK2_K2 / ij_f32
    scatters[j < i] = 0
    return scatters


def cpd_nonlin(K, ncp, lmin=1, lmax=100000, backtrack=True, out_scatters=None):
    m = int(ncp)
    n, n1 = K.shape
    assert n == n1, "Kernel matrix awaited."
    assert (m + 1) * lmin <= n <= (m + 1) * lmax
    assert 1 <= lmin <= lmax
    J = calc_scatters(K)
    if out_scatters is not None:
        out_scatters[0] = J
    Iden = 1e101 * np.ones((m + 1, n + 1))
    Iden[0, lmin:lmax] = J[0, lmin - 1 : lmax - 1]
    if backtrack:
        p = np.zeros((m + 1, n + 1), dtype=int)
    else:
        p = np.zeros((1, 1), dtype=int)
    for k in range(1, m + 1):
        for l_frame in range((k + 1) * lmin, n + 1):
            tmin = max(k * lmin, l_frame - lmax)
            tmax = l_frame - lmin + 1
            c = J[tmin:tmax, l_frame - 1].reshape(-1) + Iden[k - 1, tmin:tmax].reshape(-1)
            Iden[k, l_frame] = np.min(c)
            if backtrack:
                p[k, l_frame] = np.argmin(c) + tmin
    cps = np.zeros(m, dtype=int)
    if backtrack:
        cur = n
        for k in range(m, 0, -1):
            cps[k - 1] = p[k, cur]
            cur = cps[k - 1]
    scores = Iden[:, n].copy()
    scores[scores > 1e99] = np.inf
    return cps, scores


def cpd_auto(K, ncp, vmax, desc_rate=1, **kwargs):
    m = ncp
    _, scores = cpd_nonlin(K, m, backtrack=False, **kwargs)
    N = K.shape[0]
    N2 = N * desc_rate
    penalties = np.zeros(m + 1)
    ncp = np.arange(1, m + 1)
    penalties[1:] = (vmax * ncp / (2.0 * N2)) * (np.log(float(N2) / ncp) + 1)
    costs = scores / float(N) + penalties
    m_best = np.argmin(costs)
    cps, scores2 = cpd_nonlin(K, m_best, **kwargs)
    return cps, scores2


# ------------------------------------------------------------------------------------------------
# KTS, the original Cython loops (TatsuyaShirakawa/KTS cpd_nonlin.pyx) as plain Python


def calc_scatters_loops(K):
    n = K.shape[0]
    K1 = np.cumsum([0] + list(np.diag(K)))
    K2 = np.zeros((n + 1, n + 1))
    K2[1:, 1:] = np.cumsum(np.cumsum(K, 0), 1)
    scatters = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            scatters[i, j] = (
                K1[j + 1] - K1[i] - (K2[j + 1, j + 1] + K2[i, i] - K2[j + 1, i] - K2[i, j + 1]) / (j - i + 1)
            )
    return scatters


def cpd_nonlin_loops(K, ncp, lmin=1, lmax=100000, backtrack=True):
    m = int(ncp)
    n, n1 = K.shape[0], K.shape[1]
    assert n == n1
    assert n >= (m + 1) * lmin
    assert n <= (m + 1) * lmax
    assert lmax >= lmin >= 1
    J = calc_scatters_loops(K)
    I = 1e101 * np.ones((m + 1, n + 1))
    I[0, lmin:lmax] = J[0, lmin - 1 : lmax - 1]
    p = np.zeros((m + 1, n + 1), dtype=int) if backtrack else np.zeros((1, 1), dtype=int)
    for k in range(1, m + 1):
        for l in range((k + 1) * lmin, n + 1):
            I[k, l] = 1e100
            for t in range(max(k * lmin, l - lmax), l - lmin + 1):
                c = I[k - 1, t] + J[t, l - 1]
                if c < I[k, l]:
                    I[k, l] = c
                    if backtrack:
                        p[k, l] = t
    cps = np.zeros(m, dtype=int)
    if backtrack:
        cur = n
        for k in range(m, 0, -1):
            cps[k - 1] = p[k, cur]
            cur = cps[k - 1]
    scores = I[:, n].copy()
    scores[scores > 1e99] = np.inf
    return cps, scores


def cpd_auto_loops(K, ncp, vmax, desc_rate=1, **kwargs):
    m = ncp
    (_, scores) = cpd_nonlin_loops(K, m, backtrack=False, **kwargs)
    N = K.shape[0]
    N2 = N * desc_rate
    penalties = np.zeros(m + 1)
    ncp = np.arange(1, m + 1)
    penalties[1:] = (vmax * ncp / (2.0 * N2)) * (np.log(float(N2) / ncp) + 1)
    costs = scores / float(N) + penalties
    m_best = np.argmin(costs)
    (cps, scores2) = cpd_nonlin_loops(K, m_best, **kwargs)  # noqa: RUF059
    return (cps, costs)


# ------------------------------------------------------------------------------------------------
# ModelScope video_summarization/summarizer.py and the CLIP-It pipeline


def get_change_points(video_feat, n_frame):
    video_feat = np.array(video_feat, np.float32)
    K = np.dot(video_feat, video_feat.T)
    change_points, _ = cpd_auto(K, ncp=min(K.shape[0] - 1, 120), vmax=2.2 / 4.0, lmin=1)
    change_points = change_points * 15
    change_points = np.concatenate(([0], change_points, [n_frame - 1]))
    temp_change_points = []
    for idx in range(len(change_points) - 1):
        segment = [change_points[idx], change_points[idx + 1] - 1]
        if idx == len(change_points) - 2:
            segment = [change_points[idx], change_points[idx + 1]]
        temp_change_points.append(segment)
    change_points = np.array(list(temp_change_points))
    temp_n_frame_per_seg = []
    for change_points_idx in range(len(change_points)):
        n_frame = change_points[change_points_idx][1] - change_points[change_points_idx][0]
        temp_n_frame_per_seg.append(n_frame)
    n_frame_per_seg = np.array(list(temp_n_frame_per_seg))
    return change_points, n_frame_per_seg


def knap_sack(W, wt, val, n):
    K = [[0 for _ in range(W + 1)] for _ in range(n + 1)]
    for i in range(n + 1):
        for w in range(W + 1):
            if i == 0 or w == 0:
                K[i][w] = 0
            elif wt[i - 1] <= w:
                K[i][w] = max(val[i - 1] + K[i - 1][w - wt[i - 1]], K[i - 1][w])
            else:
                K[i][w] = K[i - 1][w]
    selected = []
    w = W
    for i in range(n, 0, -1):
        if K[i][w] != K[i - 1][w]:
            selected.insert(0, i - 1)
            w -= wt[i - 1]
    return selected


def generate_summary(all_shot_bound, all_scores, all_nframes, all_positions):
    all_summaries = []
    for video_index in range(len(all_scores)):
        shot_bound = all_shot_bound[video_index]
        frame_init_scores = all_scores[video_index]
        n_frames = all_nframes[video_index]
        positions = all_positions[video_index]
        frame_scores = np.zeros(n_frames, dtype=np.float32)
        if positions.dtype != int:
            positions = positions.astype(np.int32)
        if positions[-1] != n_frames:
            positions = np.concatenate([positions, [n_frames]])
        for i in range(len(positions) - 1):
            pos_left, pos_right = positions[i], positions[i + 1]
            if i == len(frame_init_scores):
                frame_scores[pos_left:pos_right] = 0
            else:
                frame_scores[pos_left:pos_right] = frame_init_scores[i]
        shot_imp_scores = []
        shot_lengths = []
        for shot in shot_bound:
            shot_lengths.append(shot[1] - shot[0] + 1)
            shot_imp_scores.append((frame_scores[shot[0] : shot[1] + 1].mean()).item())
        final_shot = shot_bound[-1]
        final_max_length = int((final_shot[1] + 1) * 0.15)
        selected = knap_sack(final_max_length, shot_lengths, shot_imp_scores, len(shot_lengths))
        summary = np.zeros(final_shot[1] + 1, dtype=np.int8)
        for shot in selected:
            summary[shot_bound[shot][0] : shot_bound[shot][1] + 1] = 1
        all_summaries.append(summary)
    return all_summaries


def transform_time(seconds):
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    time = "%02d:%02d:%06.3f" % (h, m, s)  # noqa: UP031
    return time


def summary_format(summary, fps):
    frames_list = []
    start_frame = -1
    end_frame = -1
    is_summary_frame = False
    for i, idx in enumerate(summary):
        if idx:
            if is_summary_frame is False:
                start_frame = i
                is_summary_frame = True
        else:
            if is_summary_frame:
                end_frame = i - 1
                frames_list.append([start_frame, end_frame])
                is_summary_frame = False
    if is_summary_frame and summary[-1] == 1:
        end_frame = len(summary) - 1
        frames_list.append([start_frame, end_frame])
    output = []
    for seg in frames_list:
        output.append(
            {
                "frame": seg,
                "timestamps": [transform_time(seg[0] / float(fps)), transform_time(seg[1] / float(fps))],
            }
        )
    return output


def norm_feature(frames_feat):
    for ii in range(len(frames_feat)):
        frame_feat = frames_feat[ii]
        frames_feat[ii] = frame_feat / np.linalg.norm(frame_feat)
    frames_feat = frames_feat.reshape((frames_feat.shape[0], -1))
    return frames_feat


# ------------------------------------------------------------------------------------------------
# The CLIP-It scoring Transformer (language_guided_video_summarization/transformer)


class ScaledDotProductAttention(nn.Module):
    def __init__(self, temperature, attn_dropout=0.1):
        super().__init__()
        self.temperature = temperature
        self.dropout = nn.Dropout(attn_dropout)

    def forward(self, q, k, v, mask=None):
        attn = torch.matmul(q / self.temperature, k.transpose(2, 3))
        if mask is not None:
            attn = attn.masked_fill(mask == 0, -1e9)
        attn = self.dropout(F.softmax(attn, dim=-1))
        output = torch.matmul(attn, v)
        return output, attn


class MultiHeadAttention(nn.Module):
    def __init__(self, n_head, d_model, d_k, d_v, dropout=0.1):
        super().__init__()
        self.n_head = n_head
        self.d_k = d_k
        self.d_v = d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.attention = ScaledDotProductAttention(temperature=d_k**0.5)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, q, k, v, mask=None):
        d_k, d_v, n_head = self.d_k, self.d_v, self.n_head
        sz_b, len_q, len_k, len_v = q.size(0), q.size(1), k.size(1), v.size(1)
        residual = q
        q = self.w_qs(q).view(sz_b, len_q, n_head, d_k)
        k = self.w_ks(k).view(sz_b, len_k, n_head, d_k)
        v = self.w_vs(v).view(sz_b, len_v, n_head, d_v)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if mask is not None:
            mask = mask.unsqueeze(1)
        q, attn = self.attention(q, k, v, mask=mask)
        q = q.transpose(1, 2).contiguous().view(sz_b, len_q, -1)
        q = self.dropout(self.fc(q))
        q += residual
        q = self.layer_norm(q)
        return q, attn


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_in, d_hid, dropout=0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_in, d_hid)
        self.w_2 = nn.Linear(d_hid, d_in)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        residual = x
        x = self.w_2(F.relu(self.w_1(x)))
        x = self.dropout(x)
        x += residual
        x = self.layer_norm(x)
        return x


class EncoderLayer(nn.Module):
    def __init__(self, d_model, d_inner, n_head, d_k, d_v, dropout=0.1):
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_v, dropout=dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, dropout=dropout)

    def forward(self, enc_input, slf_attn_mask=None):
        enc_output, enc_slf_attn = self.slf_attn(enc_input, enc_input, enc_input, mask=slf_attn_mask)
        enc_output = self.pos_ffn(enc_output)
        return enc_output, enc_slf_attn


class DecoderLayer(nn.Module):
    def __init__(self, d_model, d_inner, n_head, d_k, d_v, dropout=0.1):
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_v, dropout=dropout)
        self.enc_attn = MultiHeadAttention(n_head, d_model, d_k, d_v, dropout=dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, dropout=dropout)

    def forward(self, dec_input, enc_output, slf_attn_mask=None, dec_enc_attn_mask=None):
        dec_output, dec_slf_attn = self.slf_attn(dec_input, dec_input, dec_input, mask=slf_attn_mask)
        dec_output, dec_enc_attn = self.enc_attn(dec_output, enc_output, enc_output, mask=dec_enc_attn_mask)
        dec_output = self.pos_ffn(dec_output)
        return dec_output, dec_slf_attn, dec_enc_attn


class PositionalEncoding(nn.Module):
    def __init__(self, d_hid, n_position=200):
        super().__init__()
        self.register_buffer("pos_table", self._get_sinusoid_encoding_table(n_position, d_hid))

    def _get_sinusoid_encoding_table(self, n_position, d_hid):
        def get_position_angle_vec(position):
            return [position / np.power(10000, 2 * (hid_j // 2) / d_hid) for hid_j in range(d_hid)]

        sinusoid_table = np.array([get_position_angle_vec(pos_i) for pos_i in range(n_position)])
        sinusoid_table[:, 0::2] = np.sin(sinusoid_table[:, 0::2])
        sinusoid_table[:, 1::2] = np.cos(sinusoid_table[:, 1::2])
        return torch.FloatTensor(sinusoid_table).unsqueeze(0)

    def forward(self, x):
        return x + self.pos_table[:, : x.size(1)].clone().detach()


class Encoder(nn.Module):
    def __init__(self, d_word_vec=1024, n_layers=6, n_head=8, d_k=64, d_v=64, d_model=512, d_inner=2048,
                 dropout=0.1, n_position=200):  # fmt: skip
        super().__init__()
        self.position_enc = PositionalEncoding(d_word_vec, n_position=n_position)
        self.dropout = nn.Dropout(p=dropout)
        self.layer_stack = nn.ModuleList(
            [EncoderLayer(d_model, d_inner, n_head, d_k, d_v, dropout=dropout) for _ in range(n_layers)]
        )
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.d_model = d_model

    def forward(self, enc_output, return_attns=False):
        enc_slf_attn_list = []
        enc_output = self.dropout(self.position_enc(enc_output))
        enc_output = self.layer_norm(enc_output)
        for enc_layer in self.layer_stack:
            enc_output, enc_slf_attn = enc_layer(enc_output)
            enc_slf_attn_list += [enc_slf_attn] if return_attns else []
        if return_attns:
            return enc_output, enc_slf_attn_list
        return (enc_output,)


class Decoder(nn.Module):
    def __init__(self, d_word_vec=1024, n_layers=6, n_head=8, d_k=64, d_v=64, d_model=512, d_inner=2048,
                 n_position=200, dropout=0.1):  # fmt: skip
        super().__init__()
        self.position_enc = PositionalEncoding(d_word_vec, n_position=n_position)
        self.dropout = nn.Dropout(p=dropout)
        self.layer_stack = nn.ModuleList(
            [DecoderLayer(d_model, d_inner, n_head, d_k, d_v, dropout=dropout) for _ in range(n_layers)]
        )
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.d_model = d_model

    def forward(self, dec_output, enc_output, src_mask=None, trg_mask=None, return_attns=False):
        dec_slf_attn_list, dec_enc_attn_list = [], []
        dec_output = self.dropout(self.position_enc(dec_output))
        dec_output = self.layer_norm(dec_output)
        for dec_layer in self.layer_stack:
            dec_output, dec_slf_attn, dec_enc_attn = dec_layer(
                dec_output, enc_output, slf_attn_mask=trg_mask, dec_enc_attn_mask=src_mask
            )
            dec_slf_attn_list += [dec_slf_attn] if return_attns else []
            dec_enc_attn_list += [dec_enc_attn] if return_attns else []
        if return_attns:
            return dec_output, dec_slf_attn_list, dec_enc_attn_list
        return (dec_output,)


class Transformer(nn.Module):
    def __init__(self, num_sentence=7, txt_atten_head=4, d_frame_vec=512, d_model=512, d_inner=2048, n_layers=6,
                 n_head=8, d_k=256, d_v=256, dropout=0.1, n_position=4000):  # fmt: skip
        super().__init__()
        self.d_model = d_model
        self.layer_norm_img_src = nn.LayerNorm(d_frame_vec, eps=1e-6)
        self.layer_norm_img_trg = nn.LayerNorm(d_frame_vec, eps=1e-6)
        self.layer_norm_txt = nn.LayerNorm(num_sentence * d_frame_vec, eps=1e-6)
        self.linear_txt = nn.Linear(in_features=num_sentence * d_frame_vec, out_features=d_model)
        self.lg_attention = MultiHeadAttention(n_head=txt_atten_head, d_model=d_model, d_k=d_k, d_v=d_v)
        self.encoder = Encoder(n_position=n_position, d_word_vec=d_frame_vec, d_model=d_model, d_inner=d_inner,
                               n_layers=n_layers, n_head=n_head, d_k=d_k, d_v=d_v, dropout=dropout)  # fmt: skip
        self.decoder = Decoder(n_position=n_position, d_word_vec=d_frame_vec, d_model=d_model, d_inner=d_inner,
                               n_layers=n_layers, n_head=n_head, d_k=d_k, d_v=d_v, dropout=dropout)  # fmt: skip
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        assert d_model == d_frame_vec, "the dimensions of all module outputs shall be the same."
        self.linear_1 = nn.Linear(in_features=d_model, out_features=d_model)
        self.linear_2 = nn.Linear(in_features=self.linear_1.out_features, out_features=1)
        self.drop = nn.Dropout(p=0.5)
        self.norm_y = nn.LayerNorm(normalized_shape=d_model, eps=1e-6)
        self.norm_linear = nn.LayerNorm(normalized_shape=self.linear_1.out_features, eps=1e-6)
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    def forward(self, src_seq, src_txt, trg_seq):
        features_txt = self.linear_txt(src_txt)
        atten_seq, txt_attn = self.lg_attention(src_seq, features_txt, features_txt)  # noqa: RUF059
        enc_output, *_ = self.encoder(atten_seq)
        dec_output, *_ = self.decoder(trg_seq, enc_output)
        y = self.drop(enc_output)
        y = self.norm_y(y)
        y = self.linear_1(y)
        y = self.relu(y)
        y = self.drop(y)
        y = self.norm_linear(y)
        y = self.linear_2(y)
        y = self.sigmoid(y)
        y = y.view(1, -1)
        return y, dec_output


def clipit_scores(model, clip_image_features, clip_txt_features):
    """The pipeline's `forward` + `inference` scoring path: norm_feature on both (frames per row,
    the 7 x 512 text as one row), then the model in eval mode; returns the [N] scores list."""
    frames = norm_feature(np.array(clip_image_features, np.float32))
    txt = norm_feature(np.array(clip_txt_features, np.float32).reshape((1, -1)))
    x = torch.from_numpy(np.array(frames, np.float32)).unsqueeze(0)
    t = torch.from_numpy(np.array(txt, np.float32)).unsqueeze(0)
    with torch.no_grad():
        y, _ = model.eval()(x, t, x)
    return y.squeeze(0).numpy().tolist()
