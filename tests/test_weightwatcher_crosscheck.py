"""Our power-law alpha against WeightWatcher's on the same matrices (skipped without it)."""

import logging

import numpy as np
import pytest
import scipy.stats

from analysis import baselines, measures, spectra

ww = pytest.importorskip("weightwatcher")
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("seed,shape_", [(0, (384, 128)), (1, (1024, 256)), (2, (256, 512))])
def test_alpha_and_eigenvalues_agree_with_weightwatcher(seed, shape_):
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    w = scipy.stats.t.rvs(3, size=shape_, random_state=np.random.default_rng(seed)) * 0.01
    layer = torch.nn.Linear(shape_[1], shape_[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    details = ww.WeightWatcher(model=torch.nn.Sequential(layer)).analyze(plot=False, randomize=False, mp_fit=False)
    row = details.iloc[0]
    sv = spectra.singular_values(w)
    assert sv[0] ** 2 == pytest.approx(row["lambda_max"], rel=1e-6)
    fit = measures.powerlaw_alpha(sv)
    assert fit["xmin"] == pytest.approx(row["xmin"], rel=1e-6)
    assert fit["alpha"] == pytest.approx(row["alpha"], abs=1e-3)
