"""congruence.examples.digits_matching: the end-to-end neuron-matching example (issue 5, item 7).

The quick configuration (2 seeds, 3 epochs, MLP width 64) runs once for the module, through
``main(["--quick"])``, so the command line and the report it prints are checked by the same run.
"""


import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from congruence.examples import digits  # noqa: E402
from congruence.examples import digits_matching as dm  # noqa: E402
from example_runs import run_main_capturing_report  # noqa: E402

TABLES = ("### Test accuracy", "### Basis correlation", "### Shared frozen early layers",
          "### Interpolation barrier", "### Timings")


@pytest.fixture(scope="module")
def quick():
    """(report, printed output, exit code) of ``main(["--quick"])``."""
    return run_main_capturing_report(dm, ["--quick"])


def _all_pair_values(table):
    """Every per-pair list of a layer -> method -> values table."""
    return [values for by_method in table.values() for values in by_method.values()]


# --------------------------------------------------------------------------------------------
# the quick run


def test_main_quick_prints_every_table(quick):
    report, printed, code = quick
    assert code == 0
    assert printed == report.to_markdown()
    for heading in TABLES:
        assert heading in printed
    assert printed.count("|---|") >= 6  # one Markdown table per stage, two for the shared layers
    assert report.seeds == [0, 1] and report.pairs == [(0, 1)]
    assert report.epochs == dm.QUICK["epochs"] and report.mlp_width == dm.QUICK["mlp_width"]


def test_every_architecture_and_layer_is_reported(quick):
    report, _, _ = quick
    for arch in dm.ARCHITECTURES:
        name = arch.name
        assert len(report.accuracy[name]) == 2
        assert all(0.5 < a <= 1.0 for a in report.accuracy[name])  # trained (chance is 0.1)
        assert set(report.basis[name]) == set(arch.hidden) == set(report.controls[name])
        for k in dm.DEFAULT_SHARED_K:
            assert set(report.shared[name][k]) == set(arch.hidden[k:])  # only the layers after the shared ones
            assert len(report.shared_accuracy[name][k]) == len(report.pairs)
        assert set(report.barrier[name]) == set(dm.ALIGNS)
    assert report.units["MLP"] == {"relu1": 64, "relu2": 64, "relu3": 64}
    assert report.units["CNN"] == {"relu1": 16, "relu2": 32, "relu3": 32}


def test_self_and_permuted_self_match_exactly(quick):
    report, _, _ = quick
    for layers in report.controls.values():
        for c in layers.values():
            for key in ("self_hungarian", "self_semi", "permuted_hungarian", "permuted_semi"):
                assert abs(c[key] - 1.0) < 1e-9, (key, c[key])


def test_basis_correlations_are_correlations_and_hungarian_below_semi(quick):
    report, _, _ = quick
    tables = [report.basis[a] for a in report.basis] + [report.shared[a][k] for a in report.shared
                                                         for k in report.shared[a]]
    for table in tables:
        for values in _all_pair_values(table):
            assert len(values) == len(report.pairs)
            assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in values)
        for by_method in table.values():
            for h, s in zip(by_method["hungarian"], by_method["semi"]):
                assert h <= s + 1e-12  # semi may reuse partners, so its mean is never lower
    # Different seeds do not learn the same units: well below the self-match.
    for layers in report.basis.values():
        for by_method in layers.values():
            assert max(by_method["hungarian"]) < 0.99


def test_shared_layers_stay_frozen(quick):
    report, _, _ = quick
    assert all(ok for per_k in report.frozen_unchanged.values() for ok in per_k.values())


def test_barriers(quick):
    report, _, _ = quick
    for name, by_align in report.barrier.items():
        for vals in by_align.values():
            assert all(np.isfinite(v) for v in vals["loss"] + vals["error"])
            assert all(-1.0 <= e <= 1.0 for e in vals["error"])
        # A network against a permuted copy of itself: weight matching finds the permutation back.
        assert abs(report.barrier_control[name]["loss"]) < 1e-6
        assert abs(report.barrier_control[name]["error"]) < 1e-6
        # Independent seeds: aligning lowers the loss barrier (by a wide margin on these nets).
        none = np.mean(by_align["none"]["loss"])
        assert none > 0.1
        assert np.mean(by_align["weights"]["loss"]) < none
        assert np.mean(by_align["activations"]["loss"]) < none


def test_timings(quick):
    report, _, _ = quick
    stages = ("training", "basis correlation", "shared frozen layers", "barrier")
    assert all(report.timings[s] > 0 for s in stages)
    assert report.timings["total"] >= sum(report.timings[s] for s in stages) - 1e-9
    for s in stages:  # each stage's total is the sum of its per-architecture parts
        assert report.timings[s] == pytest.approx(sum(report.timings[f"{a.name}: {s}"] for a in dm.ARCHITECTURES))


# --------------------------------------------------------------------------------------------
# the pieces


def test_basis_correlation_dead_units_and_permutations():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    X[:, 2] = 0.0  # a dead unit of A: left out of the rows
    perm = rng.permutation(6)
    for method in ("hungarian", "semi"):
        assert dm.basis_correlation(X, X[:, perm], method) == pytest.approx(1.0, abs=1e-12)
    # B's dead units stay as partners with correlation 0: A's live unit 0 can only pair with one.
    Y = X.copy()
    Y[:, 0] = 0.0
    assert dm.basis_correlation(X, Y, "hungarian") == pytest.approx(4 / 5, abs=1e-12)
    Z = X + 0.5 * rng.standard_normal(X.shape)
    h, s = dm.basis_correlation(X, Z, "hungarian"), dm.basis_correlation(X, Z, "semi")
    assert 0.0 < h <= s < 1.0


def test_hidden_activations_use_channels_over_positions():
    model = digits.make_digits_cnn(seed=0).eval()
    X = torch.rand(5, 1, 8, 8)
    acts = dm.hidden_activations(model, ("relu1", "relu3"), X)
    assert acts["relu1"].shape == (5 * 64, 16) and acts["relu3"].shape == (5, 32)
    assert acts["relu1"].dtype == np.float64 and (acts["relu1"] >= 0).all()


def test_train_model_leaves_frozen_parameters_alone():
    X_tr, y_tr, _, _ = digits.load_digits_data(seed=0)
    model = dm.make_digits_mlp(seed=0, width=32)
    model.fc1.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    digits.train_model(model, 0, epochs=1, X_train=X_tr[:256], y_train=y_tr[:256])
    after = model.state_dict()
    assert torch.equal(after["fc1.weight"], before["fc1.weight"]) and torch.equal(after["fc1.bias"], before["fc1.bias"])
    assert not torch.equal(after["fc2.weight"], before["fc2.weight"])
    assert not model.training


def test_train_digits_cnn_is_train_model_on_make_digits_cnn():
    X_tr, y_tr, _, _ = digits.load_digits_data(seed=0)
    a = digits.train_digits_cnn(3, epochs=1, X_train=X_tr, y_train=y_tr)
    b = digits.train_model(digits.make_digits_cnn(3), 3, epochs=1, X_train=X_tr, y_train=y_tr)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_make_digits_mlp():
    model = dm.make_digits_mlp(seed=1, width=16)
    assert [n for n, _ in model.named_children()] == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "fc4"]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    again = dm.make_digits_mlp(seed=1, width=16)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    with pytest.raises(ValueError):
        dm.make_digits_mlp(width=0)


def test_run_and_main_reject_bad_arguments(capsys):
    with pytest.raises(ValueError, match="n_seeds"):
        dm.run(n_seeds=1)
    with pytest.raises(ValueError, match="epochs"):
        dm.run(epochs=0)
    with pytest.raises(ValueError, match="shared_k"):
        dm.run(shared_k=(3,))
    with pytest.raises(SystemExit) as exc:
        dm.main(["--no-such-option"])
    assert exc.value.code == 2
    assert "unrecognized" in capsys.readouterr().err
