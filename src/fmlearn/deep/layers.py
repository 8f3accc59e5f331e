"""The shared layers of the deep models: every model in :mod:`fmlearn.deep.models` is a few
lines over these.

Shapes: ``B`` rows, ``F`` fields, ``k`` the embedding size (``n_factors``). Every model reads
the ``[B, F, k]`` field tensor ``E`` made by :class:`FieldEmbedding` from a sparse batch
(:class:`Bags`): one table for all features, one bag per (row, field), the feature values kept as
``per_sample_weights``, bags pooled by sum (or mean); an empty bag is a zero row. The linear
part is the same bags over a table of width ``n_outputs`` (:class:`FieldEmbedding` holds both).

:class:`PaddedFields` is the serving twin of the bags: it makes the same tensors from the padded
``(ids, values)`` arrays of :mod:`fmlearn.export` with a gather and a one-hot matrix product, ops
that every ONNX runtime has and that an empty bag cannot break.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional

__all__ = [
    "CIN",
    "MLP",
    "AttentionPooling",
    "Bags",
    "BiInteraction",
    "DualFEN",
    "FFMInteraction",
    "FMTerm",
    "FieldEmbedding",
    "FwFMInteraction",
    "InputAwareFEN",
    "InteractionCube",
    "MultiHeadSelfAttention",
    "OneValueFields",
    "PaddedFields",
    "bi_interaction",
    "fm_interaction",
    "pair_indices",
]


class Bags(NamedTuple):
    """A sparse batch as embedding bags: one bag per (row, field), rows major.

    Attributes
    ----------
    ids : LongTensor of shape (nnz,)
        Feature ids (int64), grouped by bag.
    values : Tensor of shape (nnz,)
        Feature values (the bags' ``per_sample_weights``).
    offsets : LongTensor of shape (B * F,)
        Start of bag ``r * F + f`` in ``ids``.
    counts : Tensor of shape (B, F)
        Entries per bag (for mean pooling).
    n_rows : int
    """

    ids: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor
    counts: torch.Tensor
    n_rows: int

    def to(self, device) -> Bags:
        return Bags(self.ids.to(device), self.values.to(device), self.offsets.to(device),
                    self.counts.to(device), self.n_rows)


class OneValueFields(NamedTuple):
    """A sparse batch whose every (row, field) holds exactly one entry (one-hot or
    single-valued fields): the bags as ``[B, F]`` matrices, pooled by a plain lookup.

    Attributes
    ----------
    ids : LongTensor of shape (B, F)
        The feature id of each (row, field).
    values : Tensor of shape (B, F) or None
        None when every value is 1 (one-hot fields): the lookup alone, no product.
    n_rows : int
    """

    ids: torch.Tensor
    values: torch.Tensor | None
    n_rows: int

    def to(self, device) -> OneValueFields:
        values = None if self.values is None else self.values.to(device)
        return OneValueFields(self.ids.to(device), values, self.n_rows)


class FieldEmbedding(nn.Module):
    """Field embeddings and per-field linear sums of a sparse batch.

    Parameters
    ----------
    n_features : int
    n_fields : int
    n_factors : int
        Embedding width ``k`` (FFM: ``n_fields * k``, one vector per partner field).
    n_outputs : int
        Width of the linear table (1, or one weight per class).
    pooling : {"sum", "mean"}
        How a multi-hot bag is pooled.
    init_std : float, default=0.01
        Standard deviation of the normal draw the embeddings start from (the linear weights
        start at 0).
    """

    def __init__(self, n_features, n_fields, n_factors, n_outputs=1, pooling="sum",
                 init_std=0.01):
        super().__init__()
        self.n_fields, self.n_factors, self.pooling = int(n_fields), int(n_factors), pooling
        self.V = nn.Parameter(torch.randn(n_features, n_factors) * init_std)
        self.w = nn.Parameter(torch.zeros(n_features, n_outputs))

    def _pool(self, table, bags: Bags) -> torch.Tensor:
        out = functional.embedding_bag(bags.ids, table, bags.offsets, mode="sum",
                                       per_sample_weights=bags.values.to(table.dtype))
        out = out.view(bags.n_rows, self.n_fields, table.shape[1])
        if self.pooling == "mean":
            out = out / bags.counts.clamp(min=1).unsqueeze(-1)
        return out

    def forward(self, bags: Bags | OneValueFields) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E, L)``: field embeddings ``[B, F, k]`` and linear sums ``[B, F, n_outputs]``."""
        if isinstance(bags, OneValueFields):
            # One entry per bag: its sum and its mean are the entry itself; a lookup and a
            # product do what EmbeddingBag's per-sample weights do, with less bookkeeping.
            flat, shape = bags.ids.flatten(), (*bags.ids.shape, -1)
            E = self.V.index_select(0, flat).view(shape)
            L = self.w.index_select(0, flat).view(shape)
            if bags.values is None:  # one-hot: x * 1 is x (exact), skip the products
                return E, L
            values = bags.values.to(self.V.dtype).unsqueeze(-1)
            return E * values, L * values
        return self._pool(self.V, bags), self._pool(self.w, bags)


class PaddedFields(nn.Module):
    """:class:`FieldEmbedding`'s output from padded ``ids``/``values`` (``[N, L]``), for export.

    A constant feature -> field table maps each position to its field; a one-hot ``[N, L, F]``
    matrix (zero where the value is 0: padding) sums the positions of each field. No
    EmbeddingBag, no data-dependent shapes.
    """

    def __init__(self, embedding: FieldEmbedding, fields: torch.Tensor):
        super().__init__()
        self.embedding = embedding
        self.register_buffer("fields", fields.to(torch.int64))
        self.register_buffer("field_range", torch.arange(embedding.n_fields, dtype=torch.int64))

    def forward(self, ids, values):
        emb = self.embedding
        mask = (values != 0).to(values.dtype)
        onehot = (self.fields[ids].unsqueeze(-1) == self.field_range).to(values.dtype)
        onehot = onehot * mask.unsqueeze(-1)  # [N, L, F]
        weighted = onehot * values.unsqueeze(-1)
        pool = weighted.transpose(1, 2)  # [N, F, L]
        E = torch.matmul(pool, emb.V[ids])  # [N, F, k]
        L = torch.matmul(pool, emb.w[ids])  # [N, F, n_outputs]
        if emb.pooling == "mean":
            counts = onehot.sum(dim=1).clamp(min=1).unsqueeze(-1)
            E, L = E / counts, L / counts
        return E, L


def pair_indices(n_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the field pairs ``f < g``, in row-major order."""
    i, j = torch.triu_indices(n_fields, n_fields, offset=1)
    return i, j


def bi_interaction(E: torch.Tensor) -> torch.Tensor:
    """``sum_{f<g} e_f * e_g`` elementwise, ``[B, k]``, by the O(k F) identity
    ``((sum e)^2 - sum e^2) / 2`` (Rendle 2010; NFM's bi-interaction pooling)."""
    s = E.sum(dim=1)
    return 0.5 * (s * s - (E * E).sum(dim=1))


def fm_interaction(E: torch.Tensor) -> torch.Tensor:
    """``sum_{f<g} <e_f, e_g>``, ``[B]``."""
    return bi_interaction(E).sum(dim=1)


class BiInteraction(nn.Module):
    """NFM's bi-interaction pooling: ``[B, F, k] -> [B, k]``.

    No batch normalization (the paper's section 3.3 has one): tried here, it helped on the
    planted third-order rows (5 seeds, 10,000 rows: test AUC 0.638 against 0.616) but wrecked
    Frappe (0.781 against 0.869: with a few mini-batches per epoch the running statistics lag
    the growing embeddings, so the validation scores of epoch 2 are off and early stopping keeps
    epoch 1); a momentum of 0.5 lost on both.
    """

    def forward(self, E):
        return bi_interaction(E)


class FMTerm(nn.Module):
    """An FM term on an interaction vector ``[B, k]``: its sum for one output (the FM itself),
    a learned ``k x n_outputs`` projection (initialized to ones) for several (multi-class)."""

    def __init__(self, n_factors, n_outputs):
        super().__init__()
        self.proj = None
        if n_outputs > 1:
            self.proj = nn.Linear(n_factors, n_outputs, bias=False)
            nn.init.ones_(self.proj.weight)
            self.proj.weight.keep_init = True  # not re-drawn by DeepModel.reset_parameters

    def forward(self, h):
        return h.sum(dim=1, keepdim=True) if self.proj is None else self.proj(h)


class FFMInteraction(nn.Module):
    """Field-aware interactions: ``sum_{f<g} e_{f,g} * e_{g,f}``, ``[B, F, F, k] -> [B, k]``
    (``e_{f,g}``: field ``f``'s vector for partner field ``g``)."""

    def __init__(self, n_fields):
        super().__init__()
        i, j = pair_indices(n_fields)
        self.register_buffer("i", i)
        self.register_buffer("j", j)

    def forward(self, E4):
        return (E4[:, self.i, self.j] * E4[:, self.j, self.i]).sum(dim=1)


class FwFMInteraction(nn.Module):
    """Field-weighted interactions (Pan et al. 2018): ``sum_{f<g} r_{fg} e_f * e_g``,
    ``[B, F, k] -> [B, k]``; ``r`` starts at 1 (an FM)."""

    def __init__(self, n_fields):
        super().__init__()
        i, j = pair_indices(n_fields)
        self.register_buffer("i", i)
        self.register_buffer("j", j)
        self.r = nn.Parameter(torch.ones(i.shape[0]))

    def forward(self, E):
        return torch.einsum("bpk,p->bk", E[:, self.i] * E[:, self.j], self.r)


class AttentionPooling(nn.Module):
    """AFM's attention over the pairwise interactions (Xiao et al. 2017).

    ``a_p = softmax_p(h^T relu(W (e_f * e_g) + b))``; output ``sum_p a_p (e_f * e_g)``, ``[B, k]``.
    """

    def __init__(self, n_fields, n_factors, attention_size, dropout=0.0):
        super().__init__()
        i, j = pair_indices(n_fields)
        self.register_buffer("i", i)
        self.register_buffer("j", j)
        self.attention = nn.Linear(n_factors, attention_size)
        self.h = nn.Linear(attention_size, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, E):
        pairs = E[:, self.i] * E[:, self.j]  # [B, P, k]
        scores = self.h(torch.relu(self.attention(pairs)))  # [B, P, 1]
        a = torch.softmax(scores, dim=1)
        return self.dropout((a * pairs).sum(dim=1))


class CIN(nn.Module):
    """xDeepFM's Compressed Interaction Network (Lian et al. 2018).

    ``X^l_h = act(sum_{i,j} W^{l,h}_{ij} (X^{l-1}_i * X^0_j) + b^{l,h})``, each layer's maps
    sum-pooled over the embedding axis. With ``split_half`` (the paper's choice) half of each
    hidden layer's maps feed the next layer and half go to the output.
    ``[B, F, k] -> [B, output_size]``.

    ``activation`` is ``"identity"`` (the paper's finding, section 4.3: the identity is the
    best activation for CIN; its code and FuxiCTR's CIN use none) or ``"relu"``.
    """

    ACTIVATIONS = ("identity", "relu")

    def __init__(self, n_fields, layer_sizes, split_half=True, activation="identity"):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"CIN activation must be one of {self.ACTIVATIONS}, got "
                             f"{activation!r}")
        self.split_half, self.activation = split_half, activation
        self.convs = nn.ModuleList()
        prev, self.output_size = n_fields, 0
        for n, size in enumerate(layer_sizes):
            self.convs.append(nn.Conv1d(prev * n_fields, size, kernel_size=1))
            last = n == len(layer_sizes) - 1
            if split_half and not last:
                size //= 2
            prev = size
            self.output_size += size

    def forward(self, E):
        x0, x, pooled = E, E, []
        B, _, k = E.shape
        for n, conv in enumerate(self.convs):
            # The layer's 1x1 convolution as one GEMM over (row, embedding position) pairs,
            # [B k, H m] @ [H m, H_out] (one Frappe run each: 56 s vs 61 s an epoch for Conv1d).
            z = torch.einsum("bhk,bmk->bkhm", x, x0).reshape(B * k, -1)
            x = torch.addmm(conv.bias, z, conv.weight[:, :, 0].t())
            x = x.view(B, k, -1).transpose(1, 2)
            if self.activation == "relu":
                x = torch.relu(x)
            if self.split_half and n != len(self.convs) - 1:
                half = x.shape[1] // 2
                x, out = x[:, :half], x[:, half:2 * half]
            else:
                out = x
            pooled.append(out.sum(dim=2))
        return torch.cat(pooled, dim=1)


class MultiHeadSelfAttention(nn.Module):
    """AutoInt's interacting layer (Song et al. 2019): multi-head self-attention over fields
    with a residual projection, ``[B, F, d_in] -> [B, F, n_heads * attention_size]``."""

    def __init__(self, d_in, attention_size, n_heads, residual=True):
        super().__init__()
        self.n_heads, self.d = int(n_heads), int(attention_size)
        d_out = self.n_heads * self.d
        self.query = nn.Linear(d_in, d_out, bias=False)
        self.key = nn.Linear(d_in, d_out, bias=False)
        self.value = nn.Linear(d_in, d_out, bias=False)
        self.residual = nn.Linear(d_in, d_out, bias=False) if residual else None

    def forward(self, x):
        B, F, _ = x.shape
        d_out = self.n_heads * self.d

        def heads(t):
            return t.view(B, F, self.n_heads, self.d).transpose(1, 2)  # [B, H, F, d]

        # The query, key, value (and residual) projections as one matrix product over their
        # stacked weights (the same parameters), and the attention as torch's fused kernel
        # (unscaled, as AutoInt): fewer, larger ops on these small shapes.
        mats = [self.query.weight, self.key.weight, self.value.weight]
        if self.residual is not None:
            mats.append(self.residual.weight)
        q, k, v, *res = torch.matmul(x, torch.cat(mats).t()).split(d_out, dim=-1)
        out = functional.scaled_dot_product_attention(heads(q), heads(k), heads(v), scale=1.0)
        out = out.transpose(1, 2).reshape(B, F, d_out)
        if res:
            out = out + res[0]
        return torch.relu(out)


class MLP(nn.Module):
    """Fully connected ReLU layers with dropout, ``[B, d_in] -> [B, hidden[-1]]`` (``d_in`` when
    there are no hidden layers)."""

    def __init__(self, d_in, hidden_layer_sizes, dropout=0.0):
        super().__init__()
        layers = []
        for size in hidden_layer_sizes:
            layers += [nn.Linear(d_in, int(size)), nn.ReLU(), nn.Dropout(dropout)]
            d_in = int(size)
        self.layers = nn.Sequential(*layers)
        self.output_size = d_in

    def forward(self, x):
        return self.layers(x)


class InputAwareFEN(nn.Module):
    """IFM's factor estimating network (Yu et al. 2019): per-row field weights
    ``m = F * softmax(P MLP(flatten E))``, ``[B, F, k] -> [B, F]`` (mean 1)."""

    def __init__(self, n_fields, n_factors, hidden_layer_sizes, dropout=0.0):
        super().__init__()
        self.mlp = MLP(n_fields * n_factors, hidden_layer_sizes, dropout)
        self.P = nn.Linear(self.mlp.output_size, n_fields, bias=False)
        self.n_fields = n_fields

    def forward(self, E):
        h = self.mlp(E.flatten(1))
        return self.n_fields * torch.softmax(self.P(h), dim=1)


class DualFEN(nn.Module):
    """DIFM's dual-factor estimating network (Lu et al. 2020): a vector-wise part
    (multi-head self-attention over the fields) and a bit-wise part (an MLP over the
    concatenated embeddings), their projections summed: ``[B, F, k] -> [B, F]``."""

    def __init__(self, n_fields, n_factors, hidden_layer_sizes, attention_size, n_heads,
                 dropout=0.0):
        super().__init__()
        self.attention = MultiHeadSelfAttention(n_factors, attention_size, n_heads)
        self.P_vec = nn.Linear(n_fields * n_heads * attention_size, n_fields, bias=False)
        self.mlp = MLP(n_fields * n_factors, hidden_layer_sizes, dropout)
        self.P_bit = nn.Linear(self.mlp.output_size, n_fields, bias=False)

    def forward(self, E):
        m_vec = self.P_vec(self.attention(E).flatten(1))
        m_bit = self.P_bit(self.mlp(E.flatten(1)))
        return m_vec + m_bit


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


class InteractionCube(nn.Module):
    """CFM's interaction cube and 3-D convolutions (Xin et al. 2019).

    The outer products ``e_f e_g^T`` of the field pairs ``f < g`` are stacked into a
    ``[B, 1, P, k, k]`` cube (zero-padded to powers of two), then 3-D convolutions of kernel and
    stride 2 along every axis longer than 1 halve it until it is one cell:
    ``[B, F, k] -> [B, channels]``.

    Kernel = stride means the blocks do not overlap, so each convolution is a reshape into
    blocks and one matrix product with the kernel flattened (``nn.Conv3d`` holds the
    parameters, so model files are unchanged; :meth:`forward` never calls it). Activations stay
    channels-last, ``[B, D, S, S, C]``.

    The padding is never materialized: a block made only of padding cells gives the same
    channel vector in every row (``relu(W pad + b)``, zero padding on the cube), so each layer
    computes just the blocks that touch the real cells (``ceil(P / 2^l)`` by ``ceil(k / 2^l)``
    at layer ``l``, padded with that constant vector) and carries the constant on. Exactly the
    zero-padded cube through the Conv3d stack, on about ``P k^2 / (D S^2)`` of its cells.
    """

    def __init__(self, n_fields, n_factors, channels=32):
        super().__init__()
        i, j = pair_indices(n_fields)
        self.register_buffer("i", i)
        self.register_buffer("j", j)
        depth, side = _pow2(max(i.shape[0], 1)), _pow2(n_factors)
        self.pad = (0, side - n_factors, 0, side - n_factors, 0, depth - max(i.shape[0], 1))
        convs, c_in = [], 1
        while depth > 1 or side > 1:
            kd, ks = (2 if depth > 1 else 1), (2 if side > 1 else 1)
            convs.append(nn.Conv3d(c_in, channels, (kd, ks, ks), stride=(kd, ks, ks)))
            depth, side, c_in = depth // kd, side // ks, channels
        self.convs = nn.ModuleList(convs)
        self.output_size = c_in

    def cube(self, E):
        """The literal cube ``[B, P, k, k]`` of outer products."""
        if self.i.shape[0] == 0:
            return E.new_zeros(E.shape[0], 1, E.shape[2], E.shape[2])
        return E[:, self.i].unsqueeze(-1) * E[:, self.j].unsqueeze(-2)

    @staticmethod
    def _block_conv(x, pad, conv):
        """``conv`` (kernel = stride) on the real cells ``x`` ``[B, D, S, S, C]`` of a grid
        whose other cells hold ``pad`` ``[C]`` (None: zeros); returns the same pair one layer
        down."""
        kd, ks, _ = conv.kernel_size
        # Plain ints: the grid is fixed by the architecture (an ONNX trace keeps them constant).
        d, s, c = int(x.shape[1]), int(x.shape[2]), int(x.shape[4])
        d2, s2 = (d + kd - 1) // kd, (s + ks - 1) // ks
        # Conv3d's weight is [out, C, kd, ks, ks]; the blocks below are (kd, ks, ks, C).
        w = conv.weight.permute(0, 2, 3, 4, 1).reshape(conv.out_channels, -1)
        bias = conv.bias
        if pad is not None:
            # Linearity: blocks padded with ``pad`` = blocks of ``x - pad`` padded with zeros,
            # plus ``pad`` everywhere, whose product is folded into the bias.
            x = x - pad
            bias = functional.linear(pad.repeat(kd * ks * ks), w, bias)
        x = functional.pad(x, (0, 0, 0, s2 * ks - s, 0, s2 * ks - s, 0, d2 * kd - d))
        x = x.reshape(-1, d2, kd, s2, ks, s2, ks, c)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, d2, s2, s2, kd * ks * ks * c)
        return torch.relu(functional.linear(x, w, bias)), torch.relu(bias)

    def forward(self, E):
        x, pad = self.cube(E).unsqueeze(-1), None
        for conv in self.convs:
            x, pad = self._block_conv(x, pad, conv)
        return x.flatten(1)
