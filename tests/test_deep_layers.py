"""fmlearn.deep.layers against brute-force references, and gradient checks in float64."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from fmlearn.deep import layers  # noqa: E402
from fmlearn.deep.data import as_rows  # noqa: E402
from fmlearn.export import padded_inputs  # noqa: E402

B, F, K = 5, 4, 3


@pytest.fixture
def E():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, F, K, generator=g, dtype=torch.float64)


def _pairs(n):
    return list(itertools.combinations(range(n), 2))


def test_field_embedding_pools_bags_without_densifying_and_matches_dense_sums():
    rng = np.random.default_rng(0)
    X = sp.random(7, 9, density=0.4, random_state=1, format="csr")
    X.data = rng.normal(size=X.nnz).astype(np.float32).astype(np.float64)  # as rows keep them
    X[3] = 0  # an empty row: every field an empty bag
    X.eliminate_zeros()
    fields = np.array([2, 0, 1, 2, 0, 1, 2, 2, 0])  # columns out of field order
    rows = as_rows(X, fields)
    for pooling in ("sum", "mean"):
        emb = layers.FieldEmbedding(9, 3, K, n_outputs=2, pooling=pooling).double()
        with torch.no_grad():
            emb.w.normal_()
        bags = rows.bags(np.arange(7), 3)
        assert bags.ids.dtype == torch.int64
        E_, L_ = emb(bags)
        Xd, V, w = X.toarray(), emb.V.detach().numpy(), emb.w.detach().numpy()
        for r in range(7):
            for f in range(3):
                cols = np.flatnonzero((fields == f) & (Xd[r] != 0))
                e = (Xd[r, cols, None] * V[cols]).sum(axis=0)
                lin = (Xd[r, cols, None] * w[cols]).sum(axis=0)
                if pooling == "mean" and cols.size:
                    e, lin = e / cols.size, lin / cols.size
                np.testing.assert_allclose(E_[r, f].detach().numpy(), e, atol=1e-12)
                np.testing.assert_allclose(L_[r, f].detach().numpy(), lin, atol=1e-12)
        assert not E_[3].any()
        # The export twin reads padded (ids, values) and gives the same tensors.
        padded = padded_inputs(X)
        twin = layers.PaddedFields(emb, torch.as_tensor(fields))
        E2, L2 = twin(torch.as_tensor(padded["ids"]),
                      torch.as_tensor(padded["values"], dtype=torch.float64))
        np.testing.assert_allclose(E2.detach().numpy(), E_.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(L2.detach().numpy(), L_.detach().numpy(), atol=1e-12)


def test_bags_of_a_row_subset_keep_large_int64_ids():
    big = 2**40 + 3  # beyond float32's exact integers: DeepCTR-Torch's known corruption
    X = sp.csr_matrix((np.ones(2), np.array([1, 2]), np.array([0, 1, 2])), shape=(2, 3))
    rows = as_rows(X, np.array([0, 1, 1]))
    rows.indices[1] = big
    bags = rows.bags(np.array([1]), 2)
    assert bags.ids.tolist() == [big] and bags.offsets.tolist() == [0, 0]


def test_fm_and_bi_interaction_equal_all_pairs(E):
    pairs = _pairs(F)
    ref = sum(E[:, f] * E[:, g] for f, g in pairs)
    torch.testing.assert_close(layers.bi_interaction(E), ref)
    torch.testing.assert_close(layers.fm_interaction(E), ref.sum(dim=1))


def test_ffm_interaction_equals_all_pairs():
    g = torch.Generator().manual_seed(1)
    E4 = torch.randn(B, F, F, K, generator=g, dtype=torch.float64)
    ref = sum(E4[:, f, h] * E4[:, h, f] for f, h in _pairs(F))
    torch.testing.assert_close(layers.FFMInteraction(F)(E4), ref)


def test_fwfm_interaction_equals_all_pairs(E):
    layer = layers.FwFMInteraction(F).double()
    with torch.no_grad():
        layer.r.uniform_(-1, 1)
    r = dict(zip(_pairs(F), layer.r, strict=True))
    ref = sum(r[(f, h)] * E[:, f] * E[:, h] for f, h in _pairs(F))
    torch.testing.assert_close(layer(E), ref)


def test_attention_pooling_equals_explicit_softmax_over_pairs(E):
    layer = layers.AttentionPooling(F, K, attention_size=6).double().eval()
    W, b = layer.attention.weight, layer.attention.bias
    h = layer.h.weight[0]
    out = torch.zeros(B, K, dtype=torch.float64)
    for n in range(B):
        prods = [E[n, f] * E[n, g] for f, g in _pairs(F)]
        scores = torch.stack([h @ torch.relu(W @ p + b) for p in prods])
        a = torch.exp(scores) / torch.exp(scores).sum()
        out[n] = sum(a_p * p for a_p, p in zip(a, prods, strict=True))
    torch.testing.assert_close(layer(E), out)


@pytest.mark.parametrize("split_half, activation", [(True, "identity"), (False, "identity"),
                                                    (True, "relu")])
def test_cin_equals_explicit_loops(E, split_half, activation):
    layer = layers.CIN(F, (4, 3), split_half=split_half, activation=activation).double()
    x0 = E
    xs, pooled = x0, []
    for n, conv in enumerate(layer.convs):
        W, bias = conv.weight[:, :, 0], conv.bias  # [H, prev * F]
        H, prev = W.shape[0], xs.shape[1]
        nxt = torch.zeros(B, H, K, dtype=torch.float64)
        for b in range(B):
            for hh in range(H):
                for i in range(prev):
                    for j in range(F):
                        nxt[b, hh] += W[hh, i * F + j] * xs[b, i] * x0[b, j]
                nxt[b, hh] += bias[hh]
        if activation == "relu":
            nxt = torch.relu(nxt)
        if split_half and n < len(layer.convs) - 1:
            xs, out = nxt[:, : H // 2], nxt[:, H // 2:]
        else:
            xs, out = nxt, nxt
        pooled.append(out.sum(dim=2))
    ref = torch.cat(pooled, dim=1)
    assert ref.shape[1] == layer.output_size
    torch.testing.assert_close(layer(E), ref)


def test_self_attention_equals_explicit_heads(E):
    layer = layers.MultiHeadSelfAttention(K, attention_size=2, n_heads=3).double()
    Wq, Wk, Wv, Wr = (m.weight for m in (layer.query, layer.key, layer.value, layer.residual))
    out = torch.zeros(B, F, 6, dtype=torch.float64)
    for b in range(B):
        for hd in range(3):
            sl = slice(2 * hd, 2 * hd + 2)
            for f in range(F):
                q = Wq[sl] @ E[b, f]
                scores = torch.stack([q @ (Wk[sl] @ E[b, g]) for g in range(F)])
                a = torch.softmax(scores, dim=0)
                out[b, f, sl] = sum(a[g] * (Wv[sl] @ E[b, g]) for g in range(F))
        out[b] = out[b] + E[b] @ Wr.T
    torch.testing.assert_close(layer(E), torch.relu(out))


def test_interaction_cube_is_the_literal_outer_products(E):
    layer = layers.InteractionCube(F, K, channels=5).double()
    cube = layer.cube(E)
    for p, (f, g) in enumerate(_pairs(F)):
        for b in range(B):
            np.testing.assert_allclose(cube[b, p].detach().numpy(),
                                       np.outer(E[b, f].numpy(), E[b, g].numpy()))
    # 6 pairs and k=3 pad to 8 x 4 x 4; stride-2 convolutions halve them to one cell.
    assert len(layer.convs) == 3 and layer(E).shape == (B, 5)
    # The block matrix products are the literal zero-padded cube through literal Conv3d + ReLU.
    x = torch.zeros(B, 1, 8, 4, 4, dtype=torch.float64)
    x[:, 0, :6, :3, :3] = cube
    for conv in layer.convs:
        x = torch.relu(torch.nn.functional.conv3d(x, conv.weight, conv.bias,
                                                  stride=conv.kernel_size))
    torch.testing.assert_close(layer(E), x.flatten(1))


def test_interaction_cube_uneven_axes_match_conv3d():
    # 10 pairs (depth 16) and k=5 (side 8): the depth axis outlives the side axes.
    E5 = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer = layers.InteractionCube(5, 5, channels=4).double()
    x = torch.nn.functional.pad(layer.cube(E5), (0, 3, 0, 3, 0, 6)).unsqueeze(1)
    for conv in layer.convs:
        x = torch.relu(conv(x))
    assert [c.kernel_size for c in layer.convs] == [(2, 2, 2)] * 3 + [(2, 1, 1)]
    torch.testing.assert_close(layer(E5), x.flatten(1))


def test_input_aware_weights_average_one(E):
    fen = layers.InputAwareFEN(F, K, (8,)).double()
    m = fen(E)
    assert m.shape == (B, F) and (m > 0).all()
    torch.testing.assert_close(m.sum(dim=1), torch.full((B,), float(F), dtype=torch.float64))
    assert layers.DualFEN(F, K, (8,), 2, 2).double()(E).shape == (B, F)


def test_dense_layers_start_xavier_normal_with_zero_biases():
    from fmlearn.deep.models import MODELS

    torch.manual_seed(0)
    config = {"n_factors": 10, "dropout": 0.0, "pooling": "sum", **MODELS["deepfm"].params}
    deepfm = MODELS["deepfm"](50, 10, 3, config)
    first = deepfm.mlp.layers[0]  # 100 -> 400: Xavier-normal std sqrt(2 / 500)
    assert abs(float(first.weight.std()) / np.sqrt(2 / 500) - 1) < 0.05
    assert float(first.weight.mean()) == pytest.approx(0, abs=0.01)  # torch's default: also 0
    linears = [m for m in deepfm.modules() if isinstance(m, torch.nn.Linear)]
    assert all(not m.bias.any() for m in linears if m.bias is not None)
    # A deliberate start is kept: the multi-class FM projection starts at ones (an FM).
    assert bool((deepfm.fm.proj.weight == 1).all())
    afm = MODELS["afm"](50, 10, 1, {"n_factors": 10, "dropout": 0.0, "pooling": "sum",
                                    **MODELS["afm"].params})
    assert not bool((afm.p.weight == 1).all())  # AFM's projection is drawn, not ones
    # Embeddings start N(0, embedding_std): 1e-4 under the models whose MLP reads them raw.
    assert abs(float(deepfm.embedding.V.std()) / 1e-4 - 1) < 0.1
    assert abs(float(afm.embedding.V.std()) / 1e-2 - 1) < 0.1
    assert not deepfm.embedding.w.any()


def test_mlp_and_fm_term_shapes(E):
    assert layers.MLP(F * K, (7, 5))(E.float().flatten(1)).shape == (B, 5)
    h = layers.bi_interaction(E)
    torch.testing.assert_close(layers.FMTerm(K, 1).double()(h)[:, 0], h.sum(dim=1))
    assert layers.FMTerm(K, 3)(h.float()).shape == (B, 3)


@pytest.mark.parametrize("make", [
    lambda: layers.BiInteraction(),
    lambda: layers.FwFMInteraction(F),
    lambda: layers.AttentionPooling(F, K, 4),
    lambda: layers.CIN(F, (4, 2), activation="relu"),
    lambda: layers.CIN(F, (4, 2)),
    lambda: layers.MultiHeadSelfAttention(K, 2, 2),
    lambda: layers.InputAwareFEN(F, K, (6,)),
    lambda: layers.DualFEN(F, K, (6,), 2, 2),
    lambda: layers.InteractionCube(F, K, 2),
], ids=["bi", "fwfm", "afm", "cin-relu", "cin", "mhsa", "ifm", "difm", "cfm"])
def test_gradcheck(make, E):
    torch.manual_seed(0)
    layer = make().double()
    x = E[:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,), eps=1e-6, atol=1e-5,
                                      fast_mode=True)


def test_gradcheck_ffm_and_embedding_bags():
    g = torch.Generator().manual_seed(2)
    E4 = torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layers.FFMInteraction(3), (E4,))
    X = sp.random(3, 5, density=0.5, random_state=0, format="csr")
    bags = as_rows(X, np.array([0, 0, 1, 1, 1])).bags(np.arange(3), 2)
    V = torch.randn(5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    values = bags.values.double()
    assert torch.autograd.gradcheck(
        lambda t: torch.nn.functional.embedding_bag(bags.ids, t, bags.offsets, mode="sum",
                                                    per_sample_weights=values), (V,))


@pytest.mark.parametrize("model", ["fm", "deepfm", "xdeepfm", "cfm"])
def test_one_value_fields_path_matches_the_bags(model):
    from fmlearn.deep.models import MODELS

    rng = np.random.default_rng(4)
    n, cards = 30, np.array([3, 4, 2, 5])
    codes = rng.integers(0, cards, size=(n, 4))
    cols = (codes + np.concatenate([[0], np.cumsum(cards)[:-1]])).ravel()
    values = rng.uniform(0.5, 2.0, n * 4)  # single-valued fields, not only ones
    X = sp.csr_matrix((values, cols, np.arange(0, 4 * n + 1, 4)), shape=(n, cards.sum()))
    fields = np.repeat(np.arange(4), cards)
    rows = as_rows(X, fields)
    cls = MODELS[model]
    config = {"n_factors": K, "dropout": 0.0, "pooling": "mean", **cls.params}
    torch.manual_seed(0)
    module = cls(X.shape[1], 4, 1, config).double().eval()
    with torch.no_grad():
        module.embedding.w.normal_()
    sel = rng.permutation(n)[:11]
    fast = rows.batch(sel, 4)
    assert isinstance(fast, layers.OneValueFields) and fast.ids.shape == (11, 4)
    torch.testing.assert_close(module(fast), module(rows.bags(sel, 4)), atol=1e-6, rtol=1e-6)
    # One-hot (every value 1): no value matrix, the lookups alone; the same outputs.
    ones = X.copy()
    ones.data[:] = 1.0
    rows1 = as_rows(ones, fields)
    fast1 = rows1.batch(sel, 4)
    assert fast1.values is None
    torch.testing.assert_close(module(fast1), module(rows1.bags(sel, 4)), atol=1e-6, rtol=1e-6)
    # A second entry in one (row, field) (multi-hot) or an empty one: the bags again.
    X2 = X.tolil()
    X2[0, 1 if codes[0, 0] != 1 else 0] = 1.0
    assert isinstance(as_rows(X2.tocsr(), fields).batch(sel, 4), layers.Bags)
    X3 = X.tolil()
    X3[5, cols[20]] = 0.0
    assert isinstance(as_rows(X3.tocsr(), fields).batch(sel, 4), layers.Bags)
