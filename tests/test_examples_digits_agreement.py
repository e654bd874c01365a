"""congruence.examples.digits_agreement: the end-to-end agreement example (issue 8).

The quick configuration (5 + 5 MLPs, 3 CNNs, 6 epochs) runs once for the module, through
``main(["--quick", "--out", DIR])``, so the command line, the report it prints and the files it
writes are checked by the same run.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from congruence.agreement import CorrectnessStore, tp_histogram  # noqa: E402
from congruence.examples import digits_agreement as da  # noqa: E402
from example_runs import run_main_capturing_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """(report, printed output, exit code, output directory) of ``main(["--quick", "--out", DIR])``."""
    out = tmp_path_factory.mktemp("digits_agreement")
    report, printed, code = run_main_capturing_report(da, ["--quick", "--out", str(out)])
    return report, printed, code, out


def test_main_quick_prints_the_report(quick):
    report, printed, code, _ = quick
    assert code == 0
    assert printed == report.to_markdown()
    for heading in ("### Accuracy", "### TP-agreement histogram", "### All-or-none", "### Learning-order constancy",
                    "### Superset test", "### Pairwise agreement", "### Timings", "### Files"):
        assert heading in printed
    assert report.config["networks"] == {"A": da.QUICK["n_networks"], "B": da.QUICK["n_networks"],
                                         "C": da.QUICK["n_networks_c"]}
    assert report.config["epochs"] == da.QUICK["epochs"]
    assert (report.config["n_train"], report.config["n_test"]) == (1297, 500)


def test_networks_learn_over_several_epochs(quick):
    report, _, _, _ = quick
    for e, by_split in report.accuracy_curve.items():
        for s in da.SPLITS:
            curve = by_split[s]
            assert len(curve) == report.config["epochs"]
            assert curve[-1] > curve[0] + 0.05, (e, s, curve)  # not all learned in the first epoch
        assert all(0.7 < a <= 1.0 for a in report.accuracy[e]["test"])  # trained (chance is 0.1)


def test_every_network_has_its_own_seeds(quick):
    report, _, _, _ = quick
    pairs = [tuple(p) for e in report.seeds for p in report.seeds[e]]
    assert len(pairs) == sum(report.config["networks"].values())
    inits, orders = [p[0] for p in pairs], [p[1] for p in pairs]
    assert len(set(inits)) == len(inits) and len(set(orders)) == len(orders)


def test_histogram_counts_cover_the_examples(quick):
    report, _, _, _ = quick
    n = {"train": report.config["n_train"], "test": report.config["n_test"]}
    for e, by_split in report.histogram.items():
        for s, h in by_split.items():
            N = report.config["networks"][e]
            assert len(h["counts"]) == N + 1
            assert sum(h["counts"]) == n[s]
            assert sum(h["null"]) == pytest.approx(1.0, abs=1e-12)
    h = report.histogram["A"]["test"]
    assert sum(h["counts"]) == 500
    # The mean accuracy is the mean of k / N over the histogram.
    N = report.config["networks"]["A"]
    mean_k = sum(k * c for k, c in enumerate(h["counts"])) / 500
    assert mean_k / N == pytest.approx(np.mean(report.accuracy["A"]["test"]), abs=1e-12)


def test_networks_agree_more_than_independent_ones(quick):
    report, _, _, _ = quick
    for e, by_split in report.histogram.items():
        for s, h in by_split.items():
            assert np.isfinite(h["dispersion"]) and h["dispersion"] > 1.0, (e, s, h["dispersion"])
    h = report.histogram["A"]["test"]
    assert h["h0"] > h["null_h0"] and h["hN"] > h["null_hN"]  # the mass piles up at 0 and N
    assert h["total_variation"] > 0.05


def test_learning_order_is_shared(quick):
    report, _, _, _ = quick
    assert report.order["A-B"]["train"]["pearson"] > 0.5
    for pair in ("A-B", "A-C", "B-C"):
        for s in da.SPLITS:
            for m in ("pearson", "spearman"):
                assert -1.0 <= report.order[pair][s][m] <= 1.0
    assert f"A-B[:{da.QUICK['n_networks_c']}]" in report.order  # C is smaller than B: the control row


def test_superset_and_pairwise(quick):
    report, _, _, _ = quick
    assert {report.weak, report.strong} == {"A", "C"}
    for s, v in report.superset.items():
        assert 0.0 <= v["baseline"] <= 1.0 and 0.0 <= v["containment"] <= 1.0
        assert v["n_weak"] > 0 and v["n_strong"] > 0
    for key in ("A", "B", "C", "A-B", "A-C", "B-C"):
        assert 0.0 < report.agreement[key] <= 1.0
        assert np.isfinite(report.kappa[key]) and -1.0 <= report.kappa[key] <= 1.0


def test_json_png_and_stores_are_written(quick):
    report, _, _, out = quick
    for name in report.files:
        assert (out / name).is_file(), name
    data = json.loads((out / da.JSON_NAME).read_text(encoding="utf-8"))
    assert data["histogram"]["A"]["test"]["counts"] == report.histogram["A"]["test"]["counts"]
    assert data["order"]["A-B"]["train"]["pearson"] == pytest.approx(report.order["A-B"]["train"]["pearson"])
    assert data["timings"]["total"] == report.timings["total"]
    for name in da.FIGURES.values():
        raw = (out / name).read_bytes()
        assert raw[:8] == PNG_MAGIC and len(raw) > 5000, name
    store = CorrectnessStore.load(str(out / "store_A_test.npz"))
    assert store.shape == (da.QUICK["n_networks"], da.QUICK["epochs"], 500) and store.is_complete()
    assert [int(c) for c in tp_histogram(store).counts] == report.histogram["A"]["test"]["counts"]
    assert store.correct(-1).mean(axis=1).tolist() == pytest.approx(report.accuracy["A"]["test"])
    for e in ("A", "B", "C"):
        for s in da.SPLITS:
            assert f"store_{e}_{s}.npz" in report.files


# --------------------------------------------------------------------------------------------
# the pieces


def test_train_recorded_order_seed_changes_the_order_only():
    X_tr, y_tr, _, _ = da.load_split(0)
    X, y = X_tr[:256], y_tr[:256]
    seen = []

    def snapshot(model, epoch):
        seen.append(epoch)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    runs = [da.train_recorded(da.make_agreement_mlp(7), X, y, order_seed=o, epochs=2, callbacks=[snapshot])
            for o in (1, 1, 2)]
    assert seen == [1, 2] * 3
    assert torch.equal(runs[0][-1][0], runs[1][-1][0])  # same seeds: bit-identical
    assert not torch.equal(runs[0][-1][0], runs[2][-1][0])  # another data order: other weights


def test_make_agreement_mlp_and_split():
    model = da.make_agreement_mlp(seed=3)
    assert [n for n, _ in model.named_children()] == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    assert sum(p.numel() for p in model.parameters()) == 17226
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    X_tr, y_tr, X_te, y_te = da.load_split(0)
    assert X_tr.shape == (1297, 1, 8, 8) and X_te.shape == (500, 1, 8, 8)
    assert np.bincount(y_te.numpy()).min() >= 45  # stratified: ~50 per class
    assert da.network_seeds(0, 0, 0) != da.network_seeds(0, 1, 0)


def test_run_and_main_reject_bad_arguments(capsys):
    with pytest.raises(ValueError, match="at least 2 networks"):
        da.run(n_networks=1)
    with pytest.raises(ValueError, match="epochs"):
        da.run(epochs=0)
    with pytest.raises(SystemExit) as exc:
        da.main(["--no-such-option"])
    assert exc.value.code == 2
    assert "unrecognized" in capsys.readouterr().err
