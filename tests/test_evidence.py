"""log Z estimators on exactly sampled energies: unbiased and calibrated error bars."""

import numpy as np
import pytest

from hamon_nnx.core import evidence


def two_spin_energies(g, ladder, n_rounds):
    """V = -s1 s2 sampled exactly at every beta: P(s1 s2 = +1) = e^b / (2 cosh b)."""
    same = g.random((n_rounds, len(ladder))) < np.exp(ladder) / (2 * np.cosh(ladder))
    return np.where(same, -1.0, 1.0)


@pytest.mark.parametrize("n_slots", [3, 8])
def test_estimates_are_calibrated(n_slots):
    """Over many independent runs, errors / stderr have unit spread and zero mean."""
    g = np.random.default_rng(0)
    ladder = np.linspace(0.0, 1.0, n_slots)
    exact = np.log(4 * np.cosh(1.0))
    z = {"estimate": [], "stepping_stone": []}
    for _ in range(200):
        est = evidence.stepping_stone(two_spin_energies(g, ladder, 400), ladder, np.log(4.0))
        z["estimate"].append((est.estimate - exact) / est.stderr)
        z["stepping_stone"].append((est.stepping_stone - exact) / est.stepping_stone_stderr)
    for name, values in z.items():
        values = np.array(values)
        # 200 runs: the mean of z has sd 0.07, the sd of z about 0.05
        assert abs(values.mean()) < 0.3, name
        assert 0.8 < values.std() < 1.25, (name, values.std())


def test_bennett_beats_one_sided_estimates_with_poor_overlap():
    g = np.random.default_rng(1)
    ladder = np.array([0.0, 1.0])  # one big step: little overlap
    exact = np.log(4 * np.cosh(4.0))
    errors = {"bar": [], "forward": []}
    for _ in range(100):
        same = g.random((300, 2)) < np.exp(4 * ladder) / (2 * np.cosh(4 * ladder))
        est = evidence.stepping_stone(np.where(same, -4.0, 4.0), ladder, np.log(4.0))
        errors["bar"].append(est.estimate - exact)
        errors["forward"].append(est.forward - exact)
    assert np.sqrt(np.mean(np.square(errors["bar"]))) < np.sqrt(
        np.mean(np.square(errors["forward"]))
    )


def test_bad_energy_traces():
    ladder = np.linspace(0, 1, 4)
    with pytest.raises(ValueError, match=r"shape \(rounds, 4\)"):
        evidence.stepping_stone(np.zeros((100, 3)), ladder, 0.0)
    bad = np.zeros((100, 4))
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="round 7, ladder slot 2"):
        evidence.stepping_stone(bad, ladder, 0.0)
    with pytest.raises(ValueError, match="too few"):
        evidence.stepping_stone(np.zeros((6, 4)), ladder, 0.0)


def test_replicas_that_disagree_widen_the_error_bar():
    """Two replicas, one stuck where its energies are shifted: pooling them
    must report the disagreement, not the small within-replica noise."""
    g = np.random.default_rng(4)
    ladder = np.linspace(0, 1, 8)
    agree = np.stack([two_spin_energies(g, ladder, 2000) for _ in range(2)])
    one = evidence.stepping_stone(agree[0], ladder, np.log(4.0))
    pooled = evidence.stepping_stone(agree, ladder, np.log(4.0))
    assert pooled.n_replicas == 2 and pooled.stderr < one.stderr  # twice the rounds
    stuck = agree.copy()
    stuck[1, :, 4:] -= 0.5  # replica 1 sees lower energies at the cold slots
    split = evidence.stepping_stone(stuck, ladder, np.log(4.0))
    alone = [evidence.stepping_stone(r, ladder, np.log(4.0)) for r in stuck]
    gap = abs(alone[0].estimate - alone[1].estimate)
    assert gap > 10 * max(a.stderr for a in alone)
    assert split.stderr > gap / 4  # the spread between replicas, not the noise within
