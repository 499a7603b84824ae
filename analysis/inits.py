"""Initialisations drawn from a trained model's weights: plain functions of matrices.

For report/init-spectrum.qmd. Each takes a trained matrix w: (out, in) (or its singular
values) and a generator, and returns a new (out, in) float64 matrix:
  transplant  U diag(sigma) V^T, sigma the trained singular values, U and V Haar-random:
              the learned spectrum without the learned directions
  shuffle     the trained entries at random positions: the entry distribution without the
              spectrum's structure
  toy         the residual toy's end-to-end map at a given depth (residual.product), cut to
              the matrix's shape, turned by Haar-random rotations on both sides and scaled
              to the trained matrix's Frobenius norm: the toy's spectrum, as transplant
              keeps the trained one, without the identity's directions
`rescaled` takes any of them to another matrix's Frobenius norm (the standard init's), which
separates the shape of a distribution from its scale.
"""

import numpy as np

from .baselines import draw_seed
from .residual import product

INITS_VERSION = 2  # bump when a draw changes: init runs are keyed by it (2: toy draws rotated)
KINDS = ("transplant", "shuffle", "toy")  # drawn from the trained weights; "standard" is the model's own
STANDARD = "standard"
RESCALED = "-rescaled"  # suffix: the same draw at the standard init's per-matrix Frobenius norm


def all_kinds() -> list[str]:
    """Every init compared: standard, then each kind at the trained scale and rescaled."""
    return [STANDARD] + [k + s for k in KINDS for s in ("", RESCALED)]


def haar_columns(n: int, k: int, rng) -> np.ndarray:
    """(n, k) with orthonormal columns, Haar-distributed on the Stiefel manifold: Q of the QR
    of a Gaussian matrix with the signs of R's diagonal moved into Q (without that, Q
    depends on the QR routine's sign convention and is not Haar; Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def transplant(sv: np.ndarray, shape: tuple, rng) -> np.ndarray:
    """U diag(sv) V^T of `shape` (out, in) with min(shape) = len(sv), U and V Haar-random."""
    out, inp = shape
    k = min(shape)
    if len(sv) != k:
        raise ValueError(f"transplant: {len(sv)} singular values for a {out}x{inp} matrix; expected {k}")
    return (haar_columns(out, k, rng) * np.asarray(sv, dtype=np.float64)) @ haar_columns(inp, k, rng).T


def shuffle(w: np.ndarray, rng) -> np.ndarray:
    """w's entries at uniformly random positions."""
    w = np.asarray(w, dtype=np.float64)
    return rng.permutation(w.ravel()).reshape(w.shape)


def toy(shape: tuple, depth: int, rng, sigma2: float = 1.0) -> np.ndarray:
    """The toy's M_L (width max(shape), `depth` blocks) restricted to min(shape) input
    columns, as residual.effective_depth compares it with a matrix, laid out as (out, in),
    then Q_out M Q_inᵀ with Haar-random orthogonal Q: the same singular values, without
    the identity block E[M_L] = I would otherwise put on the matrix's first rows (for qkv:
    the first heads' projections)."""
    big, small = max(shape), min(shape)
    m = product(big, depth, rng, sigma2)[:, :small]  # (big, small)
    m = m if shape[0] >= shape[1] else m.T
    return haar_columns(shape[0], shape[0], rng) @ m @ haar_columns(shape[1], shape[1], rng).T


def rescaled(w: np.ndarray, norm: float) -> np.ndarray:
    """w scaled to Frobenius norm `norm`."""
    return np.asarray(w, dtype=np.float64) * (norm / np.linalg.norm(w))


def draw(kind: str, trained: np.ndarray, standard: np.ndarray, rng, depth: int | None = None,
         sigma2: float = 1.0) -> np.ndarray:
    """One matrix of init `kind` (all_kinds) from the trained matrix and the standard init's
    matrix of the same place, both (out, in). `depth`: the toy's, for the toy kinds."""
    base, scaled = (kind[: -len(RESCALED)], True) if kind.endswith(RESCALED) else (kind, False)
    if base == STANDARD and not scaled:
        return np.asarray(standard, dtype=np.float64)
    trained = np.asarray(trained, dtype=np.float64)
    if base == "transplant":
        w = transplant(np.linalg.svd(trained, compute_uv=False), trained.shape, rng)
    elif base == "shuffle":
        w = shuffle(trained, rng)
    elif base == "toy":
        if depth is None:
            raise ValueError("toy init: needs the toy depth")
        w = rescaled(toy(trained.shape, depth, rng, sigma2), np.linalg.norm(trained))
    else:
        raise ValueError(f"unknown init {kind!r}; expected one of {all_kinds()}")
    return rescaled(w, np.linalg.norm(standard)) if scaled else w


def initialiser(kind: str, seed: int, trained: dict, depths: dict, sigma2: float = 1.0):
    """An `init(model)` hook (tiny.train.train_run) that replaces each named parameter of
    `trained` {tensor name: (role, (out, in) trained matrix)} by draw(kind, ...), its
    standard-init value being the model's own. Each matrix draws from its own generator
    seeded by (seed, kind, tensor name), so one matrix never depends on another's draw; a
    rescaled kind takes its kind's draw (the same matrix at another norm).
    depths: {role: toy depth}. None for the standard init (nothing to replace)."""
    if kind == STANDARD:
        return None

    def init(model):
        import torch

        params = dict(model.named_parameters())
        for name, (role, w) in trained.items():
            p = params[name]
            rng = np.random.default_rng(draw_seed(seed, kind.removesuffix(RESCALED), name))  # rescaled: same draw
            new = draw(kind, w, p.detach().double().numpy(), rng, depths.get(role), sigma2)
            p.copy_(torch.from_numpy(new).to(p.dtype))

    return init
