"""congruence.examples.digits (data, model, deterministic training) and ``congruence compare``.

The tests of the example and of the CLI's argument checking need torch and scikit-learn only.
The end-to-end CLI tests also need ``congruence.comparison`` and skip without it.
"""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from congruence.cli_compare import main as compare_main  # noqa: E402
from congruence.examples import digits  # noqa: E402

SHORT_EPOCHS = 6  # ≈ 0.7 s per model on one thread; 0.95-0.965 test accuracy for seeds 0-4


@pytest.fixture(scope="module")
def data():
    return digits.load_digits_data(seed=0)


def _same_weights(m1, m2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


# --------------------------------------------------------------------------------------------
# the example


def test_load_digits_data_shapes_range_and_split(data):
    X_tr, y_tr, X_te, y_te = data
    assert X_tr.dtype == torch.float32 and X_te.dtype == torch.float32
    assert y_tr.dtype == torch.int64 and y_te.dtype == torch.int64
    assert tuple(X_tr.shape[1:]) == (1, 8, 8) and tuple(X_te.shape[1:]) == (1, 8, 8)
    assert X_tr.shape[0] + X_te.shape[0] == 1797 and X_te.shape[0] == 450
    assert y_tr.shape == (X_tr.shape[0],) and y_te.shape == (X_te.shape[0],)
    for X in (X_tr, X_te):
        assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert set(y_te.tolist()) == set(range(10))  # stratified
    again = digits.load_digits_data(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(data, again))
    other = digits.load_digits_data(seed=1)
    assert not torch.equal(other[2], X_te)
    with pytest.raises(ValueError):
        digits.load_digits_data(test_fraction=1.0)


def test_model_layer_names_size_and_output():
    model = digits.make_digits_cnn()
    assert tuple(name for name, _ in model.named_children()) == digits.LAYERS
    assert digits.LAYERS == ("conv1", "relu1", "conv2", "relu2", "pool", "flatten", "fc1", "relu3", "fc2")
    n_params = sum(p.numel() for p in model.parameters())
    assert 10_000 <= n_params <= 30_000
    assert all(not getattr(m, "inplace", False) for m in model.modules())  # hooks see pre-activations
    out = model(torch.zeros(5, 1, 8, 8))
    assert out.shape == (5, 10)


def test_make_digits_cnn_seed_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = digits.make_digits_cnn(seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert _same_weights(a, digits.make_digits_cnn(seed=7))
    assert not _same_weights(a, digits.make_digits_cnn(seed=8))


def test_training_is_deterministic_per_seed_and_restores_global_state(data):
    X_tr, y_tr, _, _ = data
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    a = digits.train_digits_cnn(0, epochs=2, X_train=X_tr, y_train=y_tr)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
    b = digits.train_digits_cnn(0, epochs=2, X_train=X_tr, y_train=y_tr)
    c = digits.train_digits_cnn(1, epochs=2, X_train=X_tr, y_train=y_tr)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)
    assert not a.training


def test_training_reaches_high_accuracy_quickly(data):
    X_tr, y_tr, X_te, y_te = data
    model = digits.train_digits_cnn(0, epochs=SHORT_EPOCHS, X_train=X_tr, y_train=y_tr)
    assert digits.accuracy(model, X_te, y_te) >= 0.9


def test_train_rejects_bad_inputs(data):
    X_tr, y_tr, _, _ = data
    with pytest.raises(ValueError):
        digits.train_digits_cnn(0, epochs=1, X_train=X_tr)
    with pytest.raises(ValueError):
        digits.train_digits_cnn(0, epochs=1, X_train=X_tr.reshape(len(X_tr), 64), y_train=y_tr)


def test_default_job(capsys):
    job = digits.default_job(0, 1, epochs=SHORT_EPOCHS, verbose=True)
    assert job.accuracy_a >= 0.9 and job.accuracy_b >= 0.9
    assert job.accuracies == (job.accuracy_a, job.accuracy_b)
    assert job.seconds_a > 0 and job.seconds_b > 0
    assert not _same_weights(job.model_a, job.model_b)
    assert torch.equal(torch.cat(job.batches), job.X_test)
    assert job.X_test.shape == (450, 1, 8, 8) and job.y_test.shape == (450,)
    assert job.layers == digits.LAYERS
    out = capsys.readouterr().out
    assert "model A (seed 0)" in out and "model B (seed 1)" in out and "accuracy" in out


# --------------------------------------------------------------------------------------------
# the CLI: argument checks (no congruence.compare needed)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture
def act_files(tmp_path):
    rng = np.random.default_rng(0)
    a = _npz(tmp_path / "acts_a.npz", layer_x=rng.standard_normal((40, 6)), layer_y=rng.standard_normal((40, 3, 2)))
    b = _npz(tmp_path / "acts_b.npz", layer_z=rng.standard_normal((40, 5)))
    return a, b


def test_cli_help_exits_zero(capsys):
    assert compare_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "congruence compare" in out and "--measures" in out and "MODULE:FACTORY" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--measures", "not_a_measure"], "unknown measure"),
        (["--measures", "linear_cka,,cca"], "--measures"),
        (["missing_a.npz", "missing_b.npz"], "not found"),
        (["neither_a_file_nor_a_spec"], "neither"),
        (["--data", "x.npy"], "--data"),
        (["--batch-size", "0"], "--batch-size"),
        (["--no-such-option"], "unrecognized"),
        (["--out", os.path.join("no", "such", "dir", "x.png")], "does not exist"),
        (["--layers-a", "conv1,nope"], "nope"),
    ],
)
def test_cli_bad_arguments_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert compare_main(argv) == 2
    err = capsys.readouterr().err
    assert "congruence compare: error:" in err and message in err
    assert not (tmp_path / "congruence-compare.png").exists()


def test_cli_bad_combinations_exit_2(act_files, capsys):
    a, b = act_files
    assert compare_main([a, b, a]) == 2  # three inputs
    assert compare_main([a, "some.module:factory"]) == 2  # mixed kinds
    assert compare_main([a, b, "--epochs", "3"]) == 2  # a demo option with files
    assert compare_main(["some.module:factory"]) == 2  # models need --data
    err = capsys.readouterr().err
    assert "at most two" in err and "both" in err and "--epochs" in err and "--data" in err


def test_cli_unreadable_and_wrong_files_exit_2(tmp_path, capsys):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    assert compare_main([str(txt)]) == 2
    junk = tmp_path / "junk.npz"
    junk.write_text("not an npz")
    assert compare_main([str(junk), "--list-layers"]) == 2
    err = capsys.readouterr().err
    assert "not an activation file" in err and "unreadable" in err


def _write_factory(tmp_path):
    mod = tmp_path / "cli_nets.py"
    mod.write_text(
        "from congruence.examples.digits import make_digits_cnn\n"
        "def make():\n    return make_digits_cnn(seed=0)\n"
        "def not_a_model():\n    return 42\n"
        "def broken():\n    raise RuntimeError('boom')\n"
    )
    return str(mod)


def test_cli_model_errors_exit_2(tmp_path, capsys):
    mod = _write_factory(tmp_path)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 1, 8, 8), np.float32))
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_text("not a checkpoint")
    wrong_ckpt = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong_ckpt)
    cases = [
        ([f"{mod}:not_a_model", "--data", str(x)], "not a torch.nn.Module"),
        ([f"{mod}:broken", "--data", str(x)], "boom"),
        ([f"{mod}:missing", "--data", str(x)], "no attribute missing"),
        (["congruence_no_such_module_xyz:make", "--data", str(x)], "No module named"),
        ([f"{mod}:make", "--data", str(tmp_path / "absent.npy")], "no such file"),
        ([f"{mod}:make", "--data", str(x), "--checkpoint-a", str(bad_ckpt)], "weights_only"),
        ([f"{mod}:make", "--data", str(x), "--checkpoint-b", str(wrong_ckpt)], "does not fit"),
    ]
    for argv, message in cases:
        assert compare_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)


def test_cli_list_layers(tmp_path, capsys, act_files):
    assert compare_main(["--list-layers"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in digits.LAYERS)
    mod = _write_factory(tmp_path)
    assert compare_main([f"{mod}:make", "--list-layers"]) == 0
    assert "fc1" in capsys.readouterr().out
    assert compare_main([act_files[0], "--list-layers"]) == 0
    out = capsys.readouterr().out
    assert "layer_x" in out and "(40, 3, 2)" in out


# --------------------------------------------------------------------------------------------
# the CLI end to end (needs congruence.compare)


def test_cli_default_job_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("congruence.comparison")
    monkeypatch.chdir(tmp_path)
    assert compare_main([]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "congruence-compare.png"
    assert png.is_file() and png.stat().st_size > 0
    assert all(name in out for name in digits.LAYERS)
    assert "accuracy" in out


def test_cli_default_job_measures_out_and_json(tmp_path, capsys):
    pytest.importorskip("congruence.comparison")
    out_png, out_json = tmp_path / "heat.png", tmp_path / "cmp.json"
    argv = ["--measures", "linear_cka,debiased_cka", "--epochs", "3", "--layers-a", "conv2,fc1",
            "--layers-b", "fc1,fc2", "--out", str(out_png), "--json", str(out_json)]
    assert compare_main(argv) == 0
    out = capsys.readouterr().out
    assert out_png.stat().st_size > 0 and out_json.stat().st_size > 0
    assert "debiased_cka" in out_json.read_text() and "fc2" in out


def test_cli_activation_files_end_to_end(act_files, tmp_path, capsys):
    pytest.importorskip("congruence.comparison")
    a, b = act_files
    out_png, out_json = tmp_path / "acts.png", tmp_path / "acts.json"
    assert compare_main([a, b, "--measures", "linear_cka,rsa", "--out", str(out_png), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert out_png.stat().st_size > 0 and out_json.stat().st_size > 0
    assert "layer_x" in out and "layer_y" in out and "layer_z" in out
    assert compare_main([a, "--no-plot"]) == 0  # one file: compared with itself
    assert "layer_x" in capsys.readouterr().out


def test_cli_activation_files_bad_layer_exit_2(act_files, capsys):
    pytest.importorskip("congruence.comparison")
    a, b = act_files
    assert compare_main([a, b, "--layers-a", "no_such_layer", "--no-plot"]) == 2
    assert "congruence compare: error:" in capsys.readouterr().err


def test_cli_models_end_to_end(tmp_path, capsys):
    pytest.importorskip("congruence.comparison")
    mod = _write_factory(tmp_path)
    ck_b = tmp_path / "b.pt"
    torch.save({"state_dict": digits.make_digits_cnn(seed=1).state_dict()}, ck_b)
    x = tmp_path / "inputs.npy"
    np.save(x, digits.load_digits_data()[2][:100].numpy().astype(np.float64))  # float64 → the model's float32
    argv = [f"{mod}:make", "--checkpoint-b", str(ck_b), "--data", str(x), "--batch-size", "32",
            "--layers-a", "conv1,fc1", "--layers-b", "fc1,fc2", "--no-plot"]
    assert compare_main(argv) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "fc2" in out and "100 samples" in out
