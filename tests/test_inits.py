"""Initialisations drawn from trained weights (analysis.inits): what each keeps and drops."""

import numpy as np
import pytest

from analysis import inits
from analysis.residual import product


def _trained(shape=(24, 10), seed=0):
    """A matrix with a non-Gaussian spectrum and an uneven entry distribution."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) @ np.diag(rng.exponential(1.0, shape[1])) + 0.3 * rng.standard_t(3, shape)


@pytest.mark.parametrize("shape", [(24, 10), (10, 24), (16, 16)])
def test_transplant_keeps_the_singular_values_to_1e_10(shape):
    w = _trained(shape)
    sv = np.linalg.svd(w, compute_uv=False)
    t = inits.transplant(sv, shape, np.random.default_rng(1))
    assert t.shape == shape
    np.testing.assert_allclose(np.linalg.svd(t, compute_uv=False), sv, rtol=0, atol=1e-10 * sv.max())
    assert np.abs(t - w).max() > 0.1  # other directions: not the trained matrix


def test_haar_columns_are_orthonormal_and_haar_distributed():
    rng = np.random.default_rng(0)
    q = inits.haar_columns(7, 3, rng)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    # Haar on O(n): the trace has mean 0 and variance 1 (Diaconis & Shahshahani). The bare Q of
    # numpy's QR has neither (mean about -0.5 for n = 3): the test tells the two apart.
    traces = np.array([np.trace(inits.haar_columns(3, 3, rng)) for _ in range(4000)])
    assert abs(traces.mean()) < 0.06 and abs(traces.var() - 1) < 0.1
    bare = np.array([np.trace(np.linalg.qr(rng.standard_normal((3, 3)))[0]) for _ in range(4000)])
    assert not (abs(bare.mean()) < 0.06 and abs(bare.var() - 1) < 0.1)


def test_transplant_singular_vectors_are_random_not_the_trained_ones():
    # The trained matrix's top left singular vector is e_0; a Haar U puts 1/n of its weight there on average.
    n, k = 12, 4
    w = np.zeros((n, k))
    w[np.arange(k), np.arange(k)] = [4.0, 3.0, 2.0, 1.0]
    sv = np.linalg.svd(w, compute_uv=False)
    rng = np.random.default_rng(3)
    first = []
    for _ in range(2000):
        u = np.linalg.svd(inits.transplant(sv, (n, k), rng))[0][:, 0]
        first.append(u[0] ** 2)
    assert abs(np.mean(first) - 1 / n) < 0.01


def test_shuffle_keeps_the_entry_multiset_and_moves_entries():
    w = _trained()
    s = inits.shuffle(w, np.random.default_rng(0))
    assert s.shape == w.shape
    np.testing.assert_array_equal(np.sort(s.ravel()), np.sort(w.ravel()))
    assert (s != w).mean() > 0.9


@pytest.mark.parametrize("kind", [k for k in inits.all_kinds() if k != inits.STANDARD])
def test_each_kind_has_the_shape_and_the_scale_it_claims(kind):
    trained, standard = _trained((24, 10)), 0.02 * np.random.default_rng(9).standard_normal((24, 10))
    w = inits.draw(kind, trained, standard, np.random.default_rng(2), depth=3)
    assert w.shape == trained.shape
    want = np.linalg.norm(standard) if kind.endswith(inits.RESCALED) else np.linalg.norm(trained)
    assert np.linalg.norm(w) == pytest.approx(want, rel=1e-12)


def test_rescaled_is_the_same_draw_at_the_standard_norm():
    trained, standard = _trained(), 0.02 * np.ones((24, 10))
    for kind in inits.KINDS:
        a = inits.draw(kind, trained, standard, np.random.default_rng(5), depth=2)
        b = inits.draw(kind + inits.RESCALED, trained, standard, np.random.default_rng(5), depth=2)
        np.testing.assert_allclose(b, a * np.linalg.norm(standard) / np.linalg.norm(a), rtol=1e-12)


@pytest.mark.parametrize("shape", [(12, 5), (5, 12)])
def test_toy_draws_are_the_toys_product_cut_to_the_matrix_shape_and_turned(shape):
    t = inits.toy(shape, 3, np.random.default_rng(4))
    assert t.shape == shape
    m = product(12, 3, np.random.default_rng(4))[:, :5]
    # The toy's singular values, not its directions: E[M_L] = I would leave an identity block.
    np.testing.assert_allclose(np.linalg.svd(t, compute_uv=False), np.linalg.svd(m, compute_uv=False), rtol=1e-10)
    big = inits.toy((120, 60) if shape[0] > shape[1] else (60, 120), 1, np.random.default_rng(4))
    assert abs(np.trace(big[:60, :60])) < 20  # unturned: about 60 (the identity's); turned: about ±1.4


def test_toy_product_has_the_path_expansions_variance():
    # E||M_L x||^2 = (1 + sigma2)^L ||x||^2: the toy the residual-paths chapter checks.
    rng = np.random.default_rng(0)
    ratios = [np.sum(product(64, 4, rng, 0.5) ** 2) / 64 for _ in range(40)]
    assert np.mean(ratios) == pytest.approx(1.5**4, rel=0.1)


def test_unknown_kind_and_missing_depth_are_errors():
    w = _trained()
    with pytest.raises(ValueError, match="unknown init"):
        inits.draw("gaussian", w, w, np.random.default_rng(0))
    with pytest.raises(ValueError, match="toy depth"):
        inits.draw("toy", w, w, np.random.default_rng(0))
    with pytest.raises(ValueError, match="singular values"):
        inits.transplant(np.ones(3), (5, 4), np.random.default_rng(0))


def test_initialiser_replaces_the_named_matrices_only():
    torch = pytest.importorskip("torch")
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    def model():
        torch.manual_seed(7)
        return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                                num_attention_heads=2, intermediate_size=64, rotary_pct=0.25,
                                                max_position_embeddings=16))

    name = "gpt_neox.layers.1.mlp.dense_h_to_4h.weight"
    trained = _trained((64, 16))
    standard, changed = model(), model()
    with torch.no_grad():
        inits.initialiser("transplant", 3, {name: ("mlp_in", trained)}, {})(changed)
    before, after = dict(standard.named_parameters()), dict(changed.named_parameters())
    for n, p in before.items():
        same = torch.equal(p, after[n])
        assert same == (n != name), n
    got = np.linalg.svd(after[name].detach().double().numpy(), compute_uv=False)
    np.testing.assert_allclose(got, np.linalg.svd(trained, compute_uv=False), rtol=1e-5)
    assert inits.initialiser(inits.STANDARD, 3, {name: ("mlp_in", trained)}, {}) is None
