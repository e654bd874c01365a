"""Transformations between networks (METHODS §6.7–6.8): analytic observation maps with known
answers, small trained networks, the observables' Jacobians against finite differences, the
neuron choice against a direct greedy Gram–Schmidt, and errors."""

import warnings

import numpy as np
import pytest

from congruence.diffusion import (TransformationMap, TransformationWarning, factors_from_jacobians,
                                  intrinsic_coordinates, select_neurons)
from congruence.diffusion.kernel import bgh_epsilon, knn_gaussian_kernel
from congruence.diffusion.transformation import relative_errors

torch = pytest.importorskip("torch")

from congruence.diffusion import observe, transformation  # noqa: E402


def fit_score(fa, dfa, fb, seed=0, n=1200, n_test=300, **kw):
    """TransformationMap from observations fa(x) (Jacobians dfa) to fb(x), x ~ U[-1, 1]; held-out error."""
    rng = np.random.default_rng(seed)
    x, xt = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n_test)
    T = TransformationMap(**kw).fit(fa(x), fb(x), factors=factors_from_jacobians(dfa(x)))
    return T, T.score(fa(xt), fb(xt), factors=factors_from_jacobians(dfa(xt)))[0]


def square(x):
    return (x ** 2)[:, None]


def d_square(x):
    return (2 * x)[:, None, None]


def curve3(x):  # a generic embedding of [-1, 1] in R^3 (2d + 1 = 3 measurements)
    return np.stack([np.tanh(2 * x), np.sin(3 * x), x ** 2], 1)


def d_curve3(x):
    return np.stack([2 / np.cosh(2 * x) ** 2, 3 * np.cos(3 * x), 2 * x], 1)[:, :, None]


def test_same_observable_maps_with_small_error_and_warns_about_whitney():
    with pytest.warns(TransformationWarning, match="fewer than 2d\\+1"):
        T, err = fit_score(square, d_square, lambda x: x ** 2)
    assert T.intrinsic_dim_ == T.intrinsic_dim_llr_ == T.covariance_rank_ == 1
    assert err < 0.05


def test_a_function_the_observable_forgets_is_not_recovered():
    # x is not a function of x^2 on [-1, 1]: the best T predicts about B's mean (error ~ 1)
    with pytest.warns(TransformationWarning):
        _, err = fit_score(square, d_square, lambda x: x)
    assert err > 0.8


@pytest.mark.parametrize("fb", [lambda x: x, lambda x: np.sin(4 * x), lambda x: np.stack([x ** 3, np.cos(x)], 1)])
def test_three_generic_measurements_recover_any_smooth_function(fb):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TransformationWarning)
        T, err = fit_score(curve3, d_curve3, fb)
    assert T.intrinsic_dim_ == 1
    assert err < 0.05


def test_coordinates_are_the_first_nontrivial_eigenvector_and_nystrom_reproduces_them():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 800)
    T = TransformationMap().fit(curve3(x), x, factors=factors_from_jacobians(d_curve3(x)))
    phi = T.coordinates_[:, 0]
    assert abs(np.corrcoef(phi, np.cos(np.pi * (x + 1) / 2))[0, 1]) > 0.995  # ψ_1 of an interval
    again = T.coordinates(curve3(x), factors=factors_from_jacobians(d_curve3(x)))[:, 0]
    assert np.corrcoef(again, phi)[0, 1] > 0.9999


def test_intrinsic_coordinates_of_a_rectangle_are_two_dimensional():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(1500, 2)) * np.array([1.0, 0.4])
    ic = intrinsic_coordinates(X, epsilon=2e-3, k=None)
    assert ic.intrinsic_dim == ic.intrinsic_dim_llr == 2
    assert list(ic.selection.selected) == [1, 3]  # METHODS 8.6 (f)
    assert ic.coordinates.shape == (1500, 2)
    assert np.allclose(np.mean(ic.coordinates ** 2, axis=0), 1.0)


def test_relative_errors_pooled_and_per_feature():
    T = np.array([[0.0, 1.0, 5.0], [2.0, 3.0, 5.0]])
    P = T + np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    pooled, per = relative_errors(P, T)
    spread = np.sum((T - T.mean(0)) ** 2)
    assert pooled == pytest.approx(np.sqrt(2.0 / spread))
    assert per[0] == pytest.approx(1.0) and per[1] == 0.0 and per[2] == 0.0
    _, per = relative_errors(P + np.array([0, 0, 1.0]), T)
    assert per[2] == np.inf


def test_bgh_slope_estimates_half_the_dimension():
    rng = np.random.default_rng(0)
    for d, lo, hi in ((1, 0.4, 0.55), (2, 0.8, 1.05)):
        X = rng.uniform(size=(1200, d))
        sq = ((X[:, None] - X[None]) ** 2).sum(-1)
        eps, slope = bgh_epsilon(sq[np.triu_indices(1200, 1)], 1200)
        assert lo < slope < hi and eps > 0
    ker = knn_gaussian_kernel(X, k=None, epsilon="bgh")
    assert ker.epsilon == pytest.approx(bgh_epsilon(sq[~np.eye(1200, dtype=bool)], 1200)[0])
    with pytest.raises(ValueError, match="'median' or 'bgh'"):
        knn_gaussian_kernel(X, epsilon="silverman")


def test_select_neurons_matches_greedy_gram_schmidt():
    rng = np.random.default_rng(5)
    J = rng.standard_normal((30, 12, 2)) * rng.uniform(0.1, 2.0, 12)[None, :, None]
    J[:, 7] = 0.0  # a dead neuron is never chosen
    J[:, 3] = 2.0 * J[:, 5]  # a neuron parallel to another adds nothing after it
    M = np.transpose(J, (0, 2, 1)).reshape(60, 12)
    chosen, R = [], M.copy()
    for _ in range(5):  # the reference: pick the largest residual column, project it out
        c = int(np.argmax(np.linalg.norm(R, axis=0)))
        chosen.append(c)
        q = R[:, c] / np.linalg.norm(R[:, c])
        R -= np.outer(q, q @ R)
    got = select_neurons(J, 5)
    assert list(got) == chosen
    assert 7 not in got and not {3, 5} <= set(got)


class _Net(torch.nn.Module):
    def __init__(self, d_in, width, d_out, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = torch.nn.Linear(d_in, width).double()
        self.act = torch.nn.Tanh()
        self.out = torch.nn.Linear(width, d_out).double()
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


def test_observe_jacobians_equal_finite_differences_through_a_generator():
    net = _Net(4, 6, 3, seed=1)

    def gen(xi):  # latent (n, 1) -> input (n, 4)
        return torch.cat([torch.sin(k * xi) for k in (1, 2, 3, 4)], dim=1)

    xi = np.linspace(0.1, 0.9, 7)[:, None]
    for layer, neurons in (("output", None), ("act", [0, 4, 5]), ("input", [1])):
        obs, J = observe(net, xi, layer=layer, neurons=neurons, generator=gen, jacobians=True)
        h = 1e-6
        up, _ = observe(net, xi + h, layer=layer, neurons=neurons, generator=gen)
        dn, _ = observe(net, xi - h, layer=layer, neurons=neurons, generator=gen)
        assert np.allclose(J[:, :, 0], (up - dn) / (2 * h), rtol=1e-6, atol=1e-8)
        assert obs.shape == J.shape[:2]


@pytest.fixture(scope="module")
def trained():
    """Small tanh MLPs trained on x² (two seeds) and x³ on [-1, 1]."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 400, dtype=torch.float64)[:, None]

    def fit(f, seed):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(1, 24), torch.nn.Tanh(), torch.nn.Linear(24, 24), torch.nn.Tanh(),
                                  torch.nn.Linear(24, 1)).double()
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        for _ in range(1000):
            opt.zero_grad()
            loss = ((net(x) - f(x)) ** 2).mean()
            loss.backward()
            opt.step()
        assert loss.item() < 1e-3
        return net

    return {"sq0": fit(lambda t: t ** 2, 0), "sq1": fit(lambda t: t ** 2, 1), "cube": fit(lambda t: t ** 3, 2)}


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(0).uniform(-1, 1, (1200, 1))


def test_networks_trained_on_the_same_function_are_equivalent(trained, inputs):
    with pytest.warns(TransformationWarning):  # one output < 2d + 1 = 3 measurements
        r = transformation(trained["sq0"], trained["sq1"], inputs, consistency=True)
    assert r.equivalent and r.error < 0.05
    assert r.intrinsic_dim == 1 and r.n_train + r.n_held_out == 1200
    assert r.consistent and r.consistency.min() >= 0.99


def test_networks_trained_on_different_functions_are_not(trained, inputs):
    with pytest.warns(TransformationWarning):
        r = transformation(trained["sq0"], trained["cube"], inputs)
    assert not r.equivalent and r.error > 0.5


def test_three_chosen_neurons_recover_the_other_network_and_the_input(trained, inputs):
    # A's outputs forget the sign of x; 2d + 1 = 3 of its hidden neurons do not (Whitney).
    with warnings.catch_warnings():
        warnings.simplefilter("error", TransformationWarning)
        r = transformation(trained["sq0"], trained["cube"], inputs, layer_a="3", neurons_a="auto")
        assert r.neurons_a.size == 3 and r.equivalent, r.error
        r_in = transformation(trained["sq0"], trained["cube"], inputs, layer_a="1", neurons_a="auto",
                              layer_b="input")
        assert r_in.equivalent, r_in.error
    fixed = transformation(trained["sq0"], trained["cube"], inputs, layer_a="3", neurons_a=list(r.neurons_a))
    assert fixed.error == pytest.approx(r.error)


def test_explicit_held_out_inputs(trained, inputs):
    with pytest.warns(TransformationWarning):
        r = transformation(trained["sq0"], trained["sq1"], inputs[:1000], held_out=inputs[1000:])
    assert r.n_train == 1000 and r.n_held_out == 200 and r.equivalent


def test_bad_arguments_name_themselves(trained, inputs):
    a, b = trained["sq0"], trained["sq1"]
    with pytest.raises(ValueError, match="held_out"):
        transformation(a, b, inputs, held_out=1.5)
    with pytest.raises(ValueError, match="held_out"):
        transformation(a, b, inputs, held_out=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="layer_a='nope'"):
        transformation(a, b, inputs, layer_a="nope")
    with pytest.raises(ValueError, match="neurons must be"):
        transformation(a, b, inputs, layer_a="1", neurons_a=[0, 99])
    with pytest.raises(ValueError, match="neurons_b"):
        transformation(a, b, inputs, neurons_b="all")
    with pytest.raises(ValueError, match="threshold"):
        transformation(a, b, inputs, threshold=0)
    with pytest.raises(ValueError, match="fewer than 2d\\+1"):
        transformation(a, b, inputs, layer_a="1", neurons_a="auto", intrinsic_dim=20)
    with pytest.raises(ValueError, match="NaN"):
        transformation(a, b, np.full((100, 1), np.nan))
    with pytest.raises(ValueError, match="intrinsic_dim"):
        TransformationMap(intrinsic_dim=0).fit(np.random.rand(50, 3), np.random.rand(50))
    with pytest.raises(ValueError, match="same number of rows"):
        TransformationMap().fit(np.random.rand(50, 3), np.random.rand(40))
    with pytest.raises(ValueError, match="obs_b contains NaN"):
        TransformationMap().fit(np.random.rand(50, 3), np.full(50, np.nan))
    with pytest.raises(ValueError, match="not fitted"):
        TransformationMap().predict(np.random.rand(5, 3))
    with pytest.raises(ValueError, match="harmonics_k"):
        TransformationMap(harmonics_k=0).fit(np.random.rand(50, 3), np.random.rand(50))
