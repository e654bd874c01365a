"""Robustness curves (METHODS.md §4.3, §7.2) on 200 real digits with two fixed linear classifiers,
checked against a direct hand computation (distort the whole set at once, logits by NumPy in
float64, argmax / top-5 by NumPy) and a loop oracle for the agreement matrix."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from congruence.agreement.distortions import Distortion, distortion_suite, to_unit_range  # noqa: E402
from congruence.agreement.robustness import RobustnessCurves, _first_argmax, robustness_curves  # noqa: E402


def _ridge(x, y, lam):
    # Closed-form one-vs-rest ridge on [x, 1]: deterministic and instant.
    xa = np.hstack([x, np.ones((x.shape[0], 1))])
    t = np.eye(10)[y]
    w = np.linalg.solve(xa.T @ xa + lam * np.eye(xa.shape[1]), xa.T @ t)
    return w[:-1].T, w[-1]


def _linear(w, b):
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor(w, dtype=torch.float32))
        m[1].bias.copy_(torch.tensor(b, dtype=torch.float32))
    return m


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(d.target))
    test, train = order[:200], order[200:]
    u8 = np.round(d.data / 16.0 * 255.0).astype(np.uint8).reshape(-1, 1, 8, 8)
    x01 = u8.reshape(len(u8), -1) / 255.0
    half = len(train) // 2
    wa, ba = _ridge(x01[train[:half]], d.target[train[:half]], 1.0)
    wb, bb = _ridge(x01[train[half:]], d.target[train[half:]], 30.0)
    return {"images": u8[test], "labels": d.target[test], "A": (wa, ba), "B": (wb, bb)}


def _hand(images, labels, dist, wb, seed):
    """Distort all images at once, float64 NumPy logits, first-max argmax, top-5 by sorting."""
    x = to_unit_range(torch.as_tensor(images))
    if dist is not None:
        x = dist(x, indices=np.arange(len(images)), seed=seed)
    w, b = wb
    w32 = torch.tensor(w, dtype=torch.float32).double().numpy()  # the model's float32 weights
    b32 = torch.tensor(b, dtype=torch.float32).double().numpy()
    logits = x.double().numpy().reshape(len(images), -1) @ w32.T + b32
    pred = np.argmax(logits, axis=1)  # numpy: first maximum
    order = np.argsort(-logits, axis=1, kind="stable")
    top5 = (order[:, :5] == labels[:, None]).any(axis=1)
    return pred, float(np.mean(pred == labels)), float(np.mean(top5))


@pytest.fixture(scope="module")
def curves(digits):
    models = {"A": _linear(*digits["A"]), "B": _linear(*digits["B"])}
    return robustness_curves(models, digits["images"], digits["labels"], batch_size=64, seed=3)


def test_accuracies_match_hand_computation(digits, curves):
    assert isinstance(curves, RobustnessCurves)
    assert curves.model_names == ("A", "B")
    assert "illuminant" not in curves.distortions  # single-channel images
    assert len(curves.distortions) == 7
    for k, key in enumerate(("A", "B")):
        pred, t1, t5 = _hand(digits["images"], digits["labels"], None, digits[key], 3)
        assert curves.reference_top1[k] == t1 and curves.reference_topk[k] == t5
        np.testing.assert_array_equal(curves.reference_predictions[k], pred)
        assert t1 > 0.85  # the classifiers work on clean digits
        for name in curves.distortions:
            for j, level in enumerate(curves.levels[name]):
                pred, t1, t5 = _hand(digits["images"], digits["labels"], Distortion(name, level), digits[key], 3)
                assert curves.top1[name][k, j] == t1, (key, name, level)
                assert curves.topk[name][k, j] == t5, (key, name, level)
                np.testing.assert_array_equal(curves.predictions[name][k, j], pred)
    # The contrast curve must actually move (c = 0.01 leaves almost no signal).
    assert curves.top1["contrast"][0, 0] < curves.top1["contrast"][0, -1] - 0.2


def test_agreement_against_oracle(curves):
    for name in curves.distortions:
        preds = curves.predictions[name]  # (K, L, n)
        K, L, n = preds.shape
        agr = curves.agreement[name]
        assert agr.shape == (L, K, K)
        for j in range(L):
            oracle = np.empty((K, K))
            for a in range(K):
                for b in range(K):
                    oracle[a, b] = sum(int(preds[a, j, i] == preds[b, j, i]) for i in range(n)) / n
            np.testing.assert_array_equal(agr[j], oracle)
            np.testing.assert_array_equal(agr[j], agr[j].T)
            np.testing.assert_array_equal(np.diag(agr[j]), np.ones(K))
            assert curves.mean_agreement[name][j] == pytest.approx(oracle[0, 1], abs=1e-15)
        # Pearson of the two accuracy curves over the levels
        if L >= 2 and np.ptp(curves.top1[name][0]) > 0 and np.ptp(curves.top1[name][1]) > 0:
            r = np.corrcoef(curves.top1[name])[0, 1]
            assert curves.curve_correlation[name][0, 1] == pytest.approx(r, abs=1e-12)
            assert curves.curve_correlation[name][1, 0] == pytest.approx(r, abs=1e-12)
    assert np.isnan(curves.curve_correlation["poisson"]).all()  # one level: no curve
    assert curves.reference_agreement[0, 1] == np.mean(curves.reference_predictions[0] ==
                                                        curves.reference_predictions[1])


def test_class_agreement(curves):
    classes, per = curves.class_agreement("contrast")
    assert list(classes) == list(np.unique(curves.labels))
    preds = curves.predictions["contrast"]
    c = classes[3]
    sel = curves.labels == c
    assert per.shape == (7, 2, 2, len(classes))
    assert per[2, 0, 1, 3] == np.mean(preds[0, 2, sel] == preds[1, 2, sel])
    with pytest.raises(ValueError, match="distortion"):
        curves.class_agreement("nope")


def test_identical_models_agree(digits):
    a = _linear(*digits["A"])
    b = _linear(*digits["A"])
    rc = robustness_curves([a, b], digits["images"], digits["labels"],
                           distortions=["contrast", "gaussian_noise", Distortion("gamma", 2.0)], seed=1)
    assert rc.model_names == ("model0", "model1")
    for name in rc.distortions:
        assert (rc.agreement[name] == 1).all() and (rc.mean_agreement[name] == 1).all()
    np.testing.assert_allclose(rc.curve_correlation["contrast"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rc.curve_correlation["gaussian_noise"], 1.0, rtol=0, atol=1e-12)
    assert np.isnan(rc.curve_correlation["gamma"]).all()  # a single level given


def test_batch_size_and_preprocess(digits, curves):
    a, b = _linear(*digits["A"]), _linear(*digits["B"])
    names = ["speckle", "poisson", "salt_pepper", "gaussian_blur"]
    seen = []

    def pre(x):  # receives ×255 images
        seen.append(float(x.max()))
        return x / 255.0

    rc = robustness_curves({"A": a, "B": b}, digits["images"], digits["labels"], names,
                           batch_size=200, seed=3, preprocess={"A": pre, "B": None})
    assert max(seen) > 200 and max(seen) <= 255
    for name in names:
        np.testing.assert_array_equal(rc.predictions[name], curves.predictions[name])
        np.testing.assert_array_equal(rc.top1[name], curves.top1[name])
    other = robustness_curves({"A": a, "B": b}, digits["images"], digits["labels"], ["speckle"], seed=4)
    assert not np.array_equal(other.predictions["speckle"], curves.predictions["speckle"])


def test_modes_restored_and_input_forms(digits):
    a = _linear(*digits["A"])
    a.train()
    imgs = torch.as_tensor(digits["images"]).float()  # 0..255 floats: /255 by to_unit_range
    rc = robustness_curves([a], imgs, torch.as_tensor(digits["labels"]), ["contrast"], top_k=1)
    assert a.training
    assert np.isnan(rc.mean_agreement["contrast"]).all()  # K = 1: no pairs
    np.testing.assert_array_equal(rc.top1["contrast"], rc.topk["contrast"])
    ref = robustness_curves([a], digits["images"], digits["labels"], ["contrast"], top_k=1)
    np.testing.assert_array_equal(ref.predictions["contrast"], rc.predictions["contrast"])


def test_argmax_ties_go_to_lowest_class():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 5.0]])
    assert torch.argmax(logits, dim=1).tolist() == [1, 0, 2]  # torch's documented first-max rule
    assert _first_argmax(logits).tolist() == [1, 0, 2]

    class Tied(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 10)
            out[:, 3] = 1.0
            out[:, 7] = 1.0
            return out

    labels = np.array([3, 7, 7, 3])
    with pytest.warns(RuntimeWarning, match="constant"):
        rc = robustness_curves([Tied()], np.zeros((4, 3, 4, 4)), labels, ["gamma"], top_k=2)
    assert (rc.predictions["gamma"] == 3).all()
    assert rc.reference_top1[0] == 0.5 and rc.reference_topk[0] == 1.0


def test_plot_writes_png(curves, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    fig = curves.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([ax for ax in fig.axes if ax.lines]) == len(curves.distortions)
    fig2 = curves.plot(metric="topk")
    assert fig2 is not fig
    with pytest.raises(ValueError, match="metric"):
        curves.plot(metric="top3")


def test_errors(digits):
    a = _linear(*digits["A"])
    x, y = digits["images"], digits["labels"]
    with pytest.raises(ValueError, match="top_k"):
        robustness_curves([a], x, y, ["contrast"], top_k=11)
    with pytest.raises(ValueError, match="labels"):
        robustness_curves([a], x, y[:-1], ["contrast"])
    with pytest.raises(ValueError, match="labels"):
        robustness_curves([a], x, np.full(len(y), 10), ["contrast"])
    with pytest.raises(ValueError, match="models"):
        robustness_curves([], x, y)
    with pytest.raises(TypeError, match="models"):
        robustness_curves([lambda t: t], x, y)
    with pytest.raises(ValueError, match="distortions"):
        robustness_curves([a], x, y, ["nope"])
    with pytest.raises(ValueError, match="images"):
        robustness_curves([a], x[:, 0], y)
    with pytest.raises(ValueError, match="batch_size"):
        robustness_curves([a], x, y, ["contrast"], batch_size=0)
    with pytest.raises(ValueError, match="C = 1"):
        robustness_curves([a], x, y, ["illuminant"])
    with pytest.raises(ValueError, match="preprocess"):
        robustness_curves({"A": a}, x, y, ["contrast"], preprocess={"B": None})

    class NaNNet(torch.nn.Module):
        def forward(self, t):
            return torch.full((t.shape[0], 10), float("nan"))

    with pytest.raises(ValueError, match="NaN"):
        robustness_curves([NaNNet()], x, y, ["contrast"])
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    with pytest.raises(ValueError, match="same classes"):
        robustness_curves([a, other], x, np.minimum(y, 4), ["contrast"])


@pytest.mark.filterwarnings("ignore:robustness_curves.*constant:RuntimeWarning")
def test_suite_default_for_colour_includes_illuminant():
    # A 3-channel batch keeps the whole suite.
    class Mean(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)), 1 - x.mean((1, 2, 3))], dim=1)

    rc = robustness_curves([Mean()], np.full((3, 3, 4, 4), 0.4), np.zeros(3, int), top_k=1)
    assert rc.distortions == tuple(dict.fromkeys(d.name for d in distortion_suite()))
