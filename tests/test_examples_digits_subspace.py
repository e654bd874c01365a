"""congruence.examples.digits_subspace: maximum-match similarity per layer on the digits networks (issue 6).

The quick configuration (2 seeds, 3 epochs, MLP width 64, exact conv match) runs once for the
module, through ``main(["--quick"])``, so the command line and the report it prints are checked by
the same run.
"""


import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import congruence  # noqa: E402
from congruence.examples import digits  # noqa: E402
from congruence.examples import digits_matching as dm  # noqa: E402
from congruence.examples import digits_subspace as ds  # noqa: E402
from example_runs import run_main_capturing_report  # noqa: E402

TABLES = ("### Test accuracy", "### Maximum-match similarity", "### Maximum-match sizes", "### Controls",
          "### Timings")


@pytest.fixture(scope="module")
def quick():
    """(report, printed output, exit code) of ``main(["--quick"])``."""
    return run_main_capturing_report(ds, ["--quick"])


def _live(report, arch, layer, seed_index):
    return report.units[arch][layer] - report.dead[arch][layer][seed_index]


# --------------------------------------------------------------------------------------------
# the quick run


def test_main_quick_prints_every_table(quick):
    report, printed, code = quick
    assert code == 0
    assert printed == report.to_markdown()
    for heading in TABLES:
        assert heading in printed
    assert sum(line.startswith("|---|") for line in printed.splitlines()) == 5  # one table per heading
    assert report.seeds == [0, 1] and report.pairs == [(0, 1)]
    assert report.epochs == ds.QUICK["epochs"] and report.mlp_width == ds.QUICK["mlp_width"]
    assert report.columns == "all" and report.eps_values == ds.DEFAULT_EPS
    for e in ds.DEFAULT_EPS:
        assert f"ε={e:g}" in printed


def test_table_has_every_layer_and_eps(quick):
    report, printed, _ = quick
    for arch in dm.ARCHITECTURES:
        name = arch.name
        assert len(report.accuracy[name]) == 2 and all(0.5 < a <= 1.0 for a in report.accuracy[name])
        assert report.random_accuracy[name] < 0.5  # untrained (chance is 0.1)
        for table in (report.similarity, report.size_x, report.size_y, report.self_similarity,
                      report.random_similarity):
            assert list(table[name]) == list(arch.hidden)
            for by_eps in table[name].values():
                assert list(by_eps) == list(ds.DEFAULT_EPS)
        for layer in arch.hidden:
            assert printed.count(f"| {name} | {layer} |") == 3  # similarity, sizes, controls
    assert report.units["MLP"] == {"relu1": 64, "relu2": 64, "relu3": 64}
    assert report.units["CNN"] == {"relu1": 16, "relu2": 32, "relu3": 32}
    # Conv layers: channels over 450 images × 64 positions; dense layers: units over 450 images.
    assert report.conv["CNN"] == {"relu1": True, "relu2": True, "relu3": False}
    assert report.samples["CNN"]["relu1"] == report.n_test * 64 and report.samples["CNN"]["relu3"] == report.n_test
    assert not any(report.conv["MLP"].values())
    assert report.unverified == 0


def test_similarities_are_fractions_consistent_with_sizes(quick):
    report, _, _ = quick
    for name, layers in report.similarity.items():
        for layer, by_eps in layers.items():
            n = report.units[name][layer]
            for e, sims in by_eps.items():
                for k, (a, b) in enumerate(report.pairs):
                    sx, sy = report.size_x[name][layer][e][k], report.size_y[name][layer][e][k]
                    assert 0.0 <= sims[k] <= 1.0
                    assert 0 <= sx <= _live(report, name, layer, a) and 0 <= sy <= _live(report, name, layer, b)
                    assert sims[k] == pytest.approx((sx + sy) / (2 * n), abs=1e-12)
                    assert (sx == 0) == (sy == 0)  # a match is empty on both sides or on neither


def test_similarity_grows_with_eps(quick):
    report, _, _ = quick
    tables = [report.similarity, report.size_x, report.size_y]
    for table in tables:
        for layers in table.values():
            for by_eps in layers.values():
                eps = sorted(by_eps)
                for k in range(len(report.pairs)):
                    vals = [by_eps[e][k] for e in eps]
                    assert all(lo <= hi for lo, hi in zip(vals, vals[1:])), vals
    for table in (report.random_similarity, report.self_similarity):
        for layers in table.values():
            for by_eps in layers.values():
                vals = [by_eps[e] for e in sorted(by_eps)]
                assert all(lo <= hi for lo, hi in zip(vals, vals[1:])), vals


def test_maximal_eps_is_where_the_whole_live_layers_match(quick):
    """At ε ≥ maximal ε every live neuron matches; below it at least one cannot (its distance to the
    span of the whole other layer exceeds ε, and a subset spans less)."""
    report, _, _ = quick
    for name, layers in report.similarity.items():
        for layer, by_eps in layers.items():
            n = report.units[name][layer]
            for k, (a, b) in enumerate(report.pairs):
                full = (_live(report, name, layer, a) + _live(report, name, layer, b)) / (2 * n)
                m = report.max_eps[name][layer][k]
                assert 0.0 <= m <= 1.0
                for e, sims in by_eps.items():
                    if e >= m:
                        assert sims[k] == pytest.approx(full, abs=1e-12)
                    else:
                        assert sims[k] < full


def test_self_control_is_the_live_fraction(quick):
    """A network against itself: every live neuron is in the span of the same layer, so the maximum
    match holds every live neuron on both sides, 2·live / (2·n) at every ε."""
    report, _, _ = quick
    for name, layers in report.self_similarity.items():
        for layer, by_eps in layers.items():
            live, n = _live(report, name, layer, 0), report.units[name][layer]
            for e, s in by_eps.items():
                assert s == pytest.approx(live / n, abs=1e-15), (name, layer, e)


def test_dead_counts_match_a_retrained_seed_0(quick):
    """The dead neurons reported for seed 0 are the all-zero columns of a network trained again the
    same way (training is deterministic)."""
    report, _, _ = quick
    X_tr, y_tr, X_te, _ = digits.load_digits_data(seed=0)
    for arch in dm.ARCHITECTURES:
        model = digits.train_model(arch.build(0, report.mlp_width), 0, epochs=report.epochs, X_train=X_tr,
                                   y_train=y_tr)
        acts = dm.hidden_activations(model, arch.hidden, X_te)
        for layer in arch.hidden:
            dead = int(np.sum(~np.any(acts[layer] != 0, axis=0)))
            assert report.dead[arch.name][layer][0] == dead, (arch.name, layer)


def test_random_init_control(quick):
    report, _, _ = quick
    for name, layers in report.random_similarity.items():
        for layer, by_eps in layers.items():
            assert 0.0 <= report.random_max_eps[name][layer] <= 1.0
            assert 0 <= report.random_dead[name][layer] <= report.units[name][layer]
            for e, s in by_eps.items():
                assert 0.0 <= s <= 1.0
                sx, sy = report.random_size_x[name][layer][e], report.random_size_y[name][layer][e]
                assert s == pytest.approx((sx + sy) / (2 * report.units[name][layer]), abs=1e-12)


def test_timings(quick):
    report, _, _ = quick
    stages = ("training", "activations", "maximum match", "controls")
    assert all(report.timings[s] >= 0 for s in stages) and report.timings["training"] > 0
    assert report.timings["total"] >= sum(report.timings[s] for s in stages) - 1e-9
    for s in stages:
        assert report.timings[s] == pytest.approx(sum(report.timings[f"{a.name}: {s}"] for a in dm.ARCHITECTURES))


# --------------------------------------------------------------------------------------------
# the pieces


def test_layer_match_agrees_with_the_library_calls():
    rng = np.random.default_rng(0)
    A = np.maximum(rng.standard_normal((300, 5)), 0.0)
    B = np.concatenate([A[:, :3] @ rng.standard_normal((3, 4)), rng.standard_normal((300, 2))], axis=1)
    A[:, 4] = 0.0  # a dead neuron
    eps = (0.1, 0.3)
    dense = ds.layer_match(A, B, eps, conv=False)
    conv = ds.layer_match(A, B, eps, conv=True, columns="all")
    sub = ds.layer_match(A, B, eps, conv=True, columns=120, repeats=3)
    for e in eps:
        ref = congruence.max_match(A, B, e)
        assert dense.similarity[e] == conv.similarity[e] == ref.similarity
        assert dense.size_x[e] == len(ref.x) and dense.size_y[e] == len(ref.y)
        proto = congruence.subspace.conv_max_match(A, B, e, columns=120, repeats=3, seed=0)
        assert sub.similarity[e] == pytest.approx(proto.similarity, abs=1e-15)
    assert dense.dead_x == 1 and dense.dead_y == 0
    assert dense.max_eps == pytest.approx(congruence.subspace.maximal_epsilon(A, B), abs=1e-15)


def test_run_and_main_reject_bad_arguments(capsys):
    with pytest.raises(ValueError, match="n_seeds"):
        ds.run(n_seeds=1)
    with pytest.raises(ValueError, match="epochs"):
        ds.run(epochs=0)
    with pytest.raises(ValueError, match="eps_values"):
        ds.run(eps_values=(0.2, -0.1))
    with pytest.raises(ValueError, match="columns"):
        ds.run(columns=0)
    with pytest.raises(ValueError, match="repeats"):
        ds.run(columns=100, repeats=0)
    with pytest.raises(SystemExit) as exc:
        ds.main(["--columns", "some"])
    assert exc.value.code == 2
    assert "positive integer or 'all'" in capsys.readouterr().err
