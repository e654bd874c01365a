"""congruence.compare (module congruence.comparison): all-pairs matrices from one streamed pass, reservoirs, files, Comparison."""

import json
import math
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import congruence as cg  # noqa: E402
from congruence.comparison import Comparison, available_measures, compare, compare_activations  # noqa: E402
from congruence.models import capture_activations  # noqa: E402
from congruence.similarity import REGISTRY  # noqa: E402

EXACT = ("linear_cka", "debiased_cka", "cca", "svcca", "pwcca", "linear_regression_r2", "procrustes")
SAMPLE = ("rbf_cka", "rsa", "mutual_knn")


def mlp(seed, width=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, 9), nn.Tanh(), nn.Linear(9, 5)).double()


def cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5)).double()


N = 90
X = torch.randn(N, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 2 + 1
IMG = torch.randn(40, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))


def batches(x, size):
    return list(x.split(size))


def concat_acts(model, layers, data, **kw):
    """Activations of the concatenated batches, captured batch by batch."""
    parts = [capture_activations(model, layers, b, **kw) for b in data]
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def in_memory(m, fa, fb, la, lb, **kw):
    out = np.empty((len(la), len(lb)))
    for i, a in enumerate(la):
        for j, b in enumerate(lb):
            r = REGISTRY[m](fa[a], fb[b], **kw)
            out[i, j] = getattr(r, "mean_rho", r)
    return out


@pytest.fixture(scope="module")
def two_models():
    A, B = mlp(0), mlp(1, width=10)
    data = batches(X, 16)
    layers = ["0", "1", "2", "4"]
    fa, fb = concat_acts(A, layers, data), concat_acts(B, layers, data)
    return A, B, data, layers, fa, fb


# ------------------------------------------------------------------------------- exactness

def test_all_pairs_equal_in_memory_measures(two_models):
    A, B, data, layers, fa, fb = two_models
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, torch.zeros(N)), batch_size=16)
    c = compare(A, B, loader, layers_a=layers, layers_b=layers[:3], measures=EXACT + SAMPLE)
    assert c.measures == EXACT + SAMPLE
    assert c.layers_a == layers and c.layers_b == layers[:3]
    assert c.n_samples == N and c.subset == {}
    assert c.info["route"] == "streamed"
    assert c.info["sources"]["linear_cka"] == "streamed" and c.info["sources"]["rsa"] == "reservoir"
    assert c.info["widths"]["b"] == {"0": 10, "1": 10, "2": 9}
    for m in EXACT + SAMPLE:
        want = in_memory(m, fa, fb, layers, layers[:3])
        assert c[m].shape == (4, 3) and c[m].dtype == np.float64
        np.testing.assert_allclose(c[m], want, rtol=1e-10, atol=1e-12, err_msg=m)


def test_one_model_against_itself_runs_once_and_is_symmetric():
    model = mlp(2)
    calls = []
    model.register_forward_hook(lambda mod, i, o: calls.append(1))
    data = batches(X, 30)
    c = compare(model, None, data, measures=("linear_cka", "debiased_cka", "pwcca", "rsa"))
    assert len(calls) == len(data)  # once per batch, not twice
    assert c.layers_a == c.layers_b == ["0", "1", "2", "3", "4"]
    v = c["linear_cka"]
    np.testing.assert_allclose(v, v.T, rtol=0, atol=0)
    np.testing.assert_allclose(np.diag(v), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(c["debiased_cka"]), 1.0, rtol=1e-12)
    f = concat_acts(model, c.layers_a, data)
    for m in ("linear_cka", "debiased_cka", "pwcca", "rsa"):
        np.testing.assert_allclose(c[m], in_memory(m, f, f, c.layers_a, c.layers_b), rtol=1e-10, atol=1e-12,
                                   err_msg=m)
    # pwcca is asymmetric: both orders computed
    assert not np.allclose(c["pwcca"], c["pwcca"].T)
    # the same model passed twice is the same comparison
    calls.clear()
    c2 = compare(model, model, data, measures="linear_cka")
    np.testing.assert_array_equal(c2["linear_cka"], v)
    assert len(calls) == len(data)
    # per-pair state is shared: one cross block per unordered pair of distinct layers
    assert c.info["memory"]["per_pair_cross_entries"] == sum(
        c.info["widths"]["a"][a] * c.info["widths"]["a"][b] for i, a in enumerate(c.layers_a)
        for b in c.layers_a[i + 1:])


def test_batch_size_does_not_change_exact_measures(two_models):
    A, B, _, layers, _, _ = two_models
    ref = compare(A, B, [X], layers_a=layers, layers_b=layers, measures=EXACT)
    for size in (1, 7, 50):
        c = compare(A, B, batches(X, size), layers_a=layers, layers_b=layers, measures=EXACT)
        for m in EXACT:
            np.testing.assert_allclose(c[m], ref[m], rtol=1e-10, atol=1e-12, err_msg=f"{m}, batch {size}")


def test_reservoir_subset_same_indices_for_every_layer(two_models):
    A, B, data, layers, fa, fb = two_models
    c = compare(A, B, data, layers_a=layers, layers_b=layers, measures=("linear_cka", "rsa", "mutual_knn"),
                reservoir=40, seed=3, measure_options={"mutual_knn": {"k": 5}})
    assert c.subset == {"rsa": 40, "mutual_knn": 40}
    res = c.info["reservoir"]
    idx = np.array(res["indices"])
    assert res["size"] == 40 and res["capacity"] == 40 and res["seed"] == 3
    assert idx.shape == (40,) and np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < N
    assert idx.max() >= 40  # samples after the first 40 were drawn
    for m, kw in (("rsa", {}), ("mutual_knn", {"k": 5})):
        sa = {k: v[idx] for k, v in fa.items()}
        sb = {k: v[idx] for k, v in fb.items()}
        np.testing.assert_allclose(c[m], in_memory(m, sa, sb, layers, layers, **kw), rtol=1e-12, atol=0)
    np.testing.assert_allclose(c["linear_cka"], in_memory("linear_cka", fa, fb, layers, layers), rtol=1e-10)
    # the draw depends on the seed and the sample order only, not on the batching
    c7 = compare(A, B, batches(X, 7), layers_a=layers, layers_b=layers, measures="rsa", reservoir=40, seed=3)
    assert c7.info["reservoir"]["indices"] == res["indices"]
    np.testing.assert_array_equal(c7["rsa"], c["rsa"])
    other = compare(A, B, data, layers_a=layers, layers_b=layers, measures="rsa", reservoir=40, seed=4)
    assert other.info["reservoir"]["indices"] != res["indices"]


def test_reservoir_sampling_is_uniform():
    from congruence.comparison import _Reservoir

    counts = np.zeros(200)
    for seed in range(300):
        r = _Reservoir(20, seed, {"x": 1}, {"x": np.dtype(np.float32)})
        for start in range(0, 200, 33):
            b = min(33, 200 - start)
            r.update(start, {"x": np.zeros((b, 1), dtype=np.float32)})
        idx, _ = r.arrays()
        assert len(set(idx.tolist())) == 20
        counts[idx] += 1
    # each sample is kept with probability 20/200 = 0.1: 30 expected out of 300 draws
    assert abs(counts[:100].mean() - 30) < 3 and abs(counts[100:].mean() - 30) < 3
    assert counts.min() > 10 and counts.max() < 55


def test_max_batches(two_models):
    A, B, data, layers, _, _ = two_models
    c = compare(A, B, data, layers_a=layers, layers_b=layers, max_batches=2, measures=("linear_cka", "cca"))
    assert c.n_samples == 32 and c.info["n_batches"] == 2
    ref = compare(A, B, data[:2], layers_a=layers, layers_b=layers, measures=("linear_cka", "cca"))
    np.testing.assert_allclose(c["linear_cka"], ref["linear_cka"], rtol=1e-13)

    def gen():  # an iterator without len() is not consumed beyond max_batches
        for i, b in enumerate(data):
            if i >= 3:
                raise AssertionError("consumed beyond max_batches")
            yield b

    assert compare(A, B, gen(), layers_a=["0"], layers_b=["0"], max_batches=3).n_samples == 48


def test_cnn_spatial_policies_and_dict_batches():
    A, B = cnn(0), cnn(1)
    data = batches(IMG, 16)
    for spatial in ("flatten", "mean"):
        c = compare(A, B, data, layers_a=["0", "2", "4"], layers_b=["0", "2", "4"], spatial=spatial,
                    measures=("linear_cka", "procrustes"))
        fa = concat_acts(A, ["0", "2", "4"], data, spatial=spatial)
        fb = concat_acts(B, ["0", "2", "4"], data, spatial=spatial)
        for m in ("linear_cka", "procrustes"):
            np.testing.assert_allclose(c[m], in_memory(m, fa, fb, ["0", "2", "4"], ["0", "2", "4"]), rtol=1e-10)
        assert c.info["shapes"]["a"]["0"] == [4, 6, 6]
        assert c.info["widths"]["a"]["0"] == (4 * 36 if spatial == "flatten" else 4)
    # positions: rows are image positions; only layers with the same spatial size pair up
    c = compare(A, B, data, layers_a=["0", "1"], layers_b=["0"], spatial="positions", measures="linear_cka")
    assert c.n_samples == 40 * 36
    with pytest.raises(ValueError, match="different numbers of samples"):
        compare(A, B, data, layers_a=["0", "2"], layers_b=["0"], spatial="positions")

    class Kw(nn.Module):
        def __init__(self, seed):
            super().__init__()
            self.net = mlp(seed)

        def forward(self, inputs, scale=1.0):
            return self.net(inputs * scale)

    ka, kb = Kw(0), Kw(1)
    dict_data = [{"inputs": b, "scale": 2.0} for b in batches(X, 30)]
    c = compare(ka, kb, dict_data, layers_a=["net.0", "net.2"], layers_b=["net.0"])
    ref = compare(ka.net, kb.net, batches(2.0 * X, 30), layers_a=["0", "2"], layers_b=["0"])
    np.testing.assert_allclose(c["linear_cka"], ref["linear_cka"], rtol=1e-12)


def test_select_and_default_layers():
    class Enc(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.lin = nn.Linear(6, 8).double()
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            h = self.lin(x)
            return {"hidden": h, "other": h.relu()}

    class Wrap(nn.Module):
        def __init__(self, seed):
            super().__init__()
            self.enc = Enc(seed)

        def forward(self, x):
            return self.enc(x)["hidden"]

    A, B = Wrap(0), Wrap(1)
    data = batches(X, 45)
    with pytest.warns(UserWarning, match="did not run"):
        c = compare(A, B, data)  # default layers: enc.lin, enc.unused (never runs: dropped)
    assert c.layers_a == ["enc.lin"] and c.info["skipped_layers"] == ["model_a:enc.unused", "model_b:enc.unused"]
    with pytest.raises(ValueError, match="did not run"):
        compare(A, B, data, layers_a=["enc.unused"], layers_b=["enc"])
    c = compare(A, B, data, layers_a=["enc", "enc.lin"], layers_b=["enc"], select={"enc": "other"})
    fa = concat_acts(A, ["enc", "enc.lin"], data, select={"enc": "other"})
    fb = concat_acts(B, ["enc"], data, select="other")
    np.testing.assert_allclose(c["linear_cka"], in_memory("linear_cka", fa, fb, ["enc", "enc.lin"], ["enc"]),
                               rtol=1e-12)


def test_torch_state_path(monkeypatch, two_models):
    """The code path of GPU activations (state in torch float64 on the activations' device, bounded
    reservoir rows copied to the host), exercised on CPU tensors."""
    import importlib

    CM = importlib.import_module("congruence.comparison")

    A, B, data, layers, fa, fb = two_models
    monkeypatch.setattr(CM, "_cuda_device", lambda x: x.device if CM._is_torch(x) else None)
    ms = ("linear_cka", "debiased_cka", "cca", "linear_regression_r2", "rsa")
    c = compare(A, B, data, layers_a=layers, layers_b=layers, measures=ms, reservoir=60)
    assert c.subset == {"rsa": 60}
    idx = np.array(c.info["reservoir"]["indices"])
    for m in ms:
        sa = fa if m != "rsa" else {k: v[idx] for k, v in fa.items()}
        sb = fb if m != "rsa" else {k: v[idx] for k, v in fb.items()}
        np.testing.assert_allclose(c[m], in_memory(m, sa, sb, layers, layers), rtol=1e-10, atol=1e-12, err_msg=m)


# ------------------------------------------------------------------------------- saved activations

def test_compare_activations_files(tmp_path, two_models):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    A, B, data, layers, fa, fb = two_models
    ms = ("linear_cka", "debiased_cka", "cca", "rsa")
    ref = compare(A, B, data, layers_a=layers, layers_b=layers, measures=ms)
    c = compare_activations(fa, fb, measures=ms, batch_size=13)
    for m in ms:
        np.testing.assert_allclose(c[m], ref[m], rtol=1e-10, atol=1e-13, err_msg=m)
    assert c.layers_a == layers and c.n_samples == N
    np.savez(tmp_path / "a.npz", **fa)
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in fb.items()}, str(tmp_path / "b.safetensors"))
    c = compare_activations(tmp_path / "a.npz", str(tmp_path / "b.safetensors"), measures=ms, batch_size=13)
    for m in ms:
        np.testing.assert_allclose(c[m], ref[m], rtol=1e-10, atol=1e-13, err_msg=m)
    # .npy: one layer per file, named by the stem (memory-mapped, streamed in row batches)
    np.save(tmp_path / "a2.npy", fa["2"])
    np.save(tmp_path / "b0.npy", fb["0"])
    c = compare_activations(tmp_path / "a2.npy", tmp_path / "b0.npy", measures=ms, batch_size=20)
    assert c.layers_a == ["a2"] and c.layers_b == ["b0"]
    for m in ms:
        np.testing.assert_allclose(c[m], ref[m][2:3, 0:1], rtol=1e-10, atol=1e-13, err_msg=m)
    # a directory of .npy files; one set against itself
    d = tmp_path / "dir"
    d.mkdir()
    for k, v in fa.items():
        np.save(d / f"l{k}.npy", v)
    c = compare_activations(d, measures="linear_cka")
    assert c.layers_a == c.layers_b == ["l0", "l1", "l2", "l4"]
    self_ref = compare(A, None, data, layers_a=layers, measures="linear_cka")
    np.testing.assert_allclose(c["linear_cka"], self_ref["linear_cka"], rtol=1e-10)
    # layer selection
    c = compare_activations(tmp_path / "a.npz", tmp_path / "a.npz", layers_a=["4"], layers_b=["0", "1"])
    assert c.info["self_comparison"] and c["linear_cka"].shape == (1, 2)
    # bfloat16 tensors in a .safetensors file (read through torch)
    pytest.importorskip("safetensors.torch").save_file(
        {"h": torch.from_numpy(fa["1"]).to(torch.bfloat16), "g": torch.from_numpy(fb["1"]).float()},
        str(tmp_path / "bf.safetensors"))
    c = compare_activations(tmp_path / "bf.safetensors", measures=("linear_cka", "rsa"), batch_size=32)
    h = torch.from_numpy(fa["1"]).to(torch.bfloat16).float().numpy()
    assert c["linear_cka"][0, 1] == pytest.approx(cg.linear_cka(h, fb["1"].astype(np.float32)), rel=1e-6)
    assert c["rsa"][0, 1] == pytest.approx(cg.rsa(h, fb["1"].astype(np.float32)), rel=1e-12)


def test_float32_models_and_device_argument():
    A, B = mlp(0).float(), mlp(1).float()
    xf = X.float()
    data = batches(xf, 25)
    c = compare(A, B, data, layers_a=["0", "2"], layers_b=["2"], measures=("linear_cka", "cca", "mutual_knn"),
                device="cpu")
    fa, fb = concat_acts(A, ["0", "2"], data), concat_acts(B, ["2"], data)
    assert fa["0"].dtype == np.float32
    # float32 activations: the streamed products run in float32 (sums over <= 4096 samples in
    # float64, the CrossStats policy), so the feature measures agree to float32 rounding
    np.testing.assert_allclose(c["linear_cka"], in_memory("linear_cka", fa, fb, ["0", "2"], ["2"]), rtol=1e-6)
    assert c.info["precision"] == "float32"
    np.testing.assert_allclose(c["mutual_knn"], in_memory("mutual_knn", fa, fb, ["0", "2"], ["2"]), rtol=1e-10)
    # layer "0" (12 features of 6 inputs) is rank-deficient: in float32 its null space is rounding
    # noise, which both in-memory paths and the streamed float32-product Grams treat as zero rank
    # (cut-offs by the inputs' / products' precision), so all three agree
    for kw in ({"method": "covariance"}, {"method": "qr"}):
        np.testing.assert_allclose(c["cca"], in_memory("cca", fa, fb, ["0", "2"], ["2"], **kw), rtol=1e-5,
                                   err_msg=str(kw))


def test_compare_activations_conv_arrays_and_torch(tmp_path):
    A, B = cnn(0), cnn(1)
    data = batches(IMG, 16)
    conv_a = torch.cat([A[0](b) for b in data]).detach().numpy()
    conv_b = torch.cat([B[0](b) for b in data]).detach().numpy()
    for spatial in ("flatten", "mean", "positions"):
        ms = ("linear_cka", "procrustes")
        ref = compare(A, B, data, layers_a=["0"], layers_b=["0"], spatial=spatial, measures=ms)
        np.save(tmp_path / "0.npy", conv_a)
        c = compare_activations(tmp_path / "0.npy", {"0": torch.from_numpy(conv_b)}, spatial=spatial,
                                measures=ms, batch_size=9)
        for m in ms:
            np.testing.assert_allclose(c[m], ref[m], rtol=1e-10, err_msg=f"{m}, {spatial}")
        assert c.info["shapes"]["a"]["0"] == [4, 6, 6]


# ------------------------------------------------------------------------------- the result object

@pytest.fixture(scope="module")
def small_comparison(two_models):
    A, B, data, layers, _, _ = two_models
    return compare(A, B, data, layers_a=layers, layers_b=layers[:2], measures=("linear_cka", "rsa"), reservoir=50)


def test_json_round_trip(tmp_path, small_comparison):
    c = small_comparison
    text = c.to_json()
    d = json.loads(text)
    assert d["format"] == "congruence.Comparison" and d["subset"] == {"rsa": 50}
    back = Comparison.from_json(text)
    assert back.measures == c.measures and back.layers_a == c.layers_a and back.layers_b == c.layers_b
    assert back.n_samples == c.n_samples and back.subset == c.subset
    for m in c.measures:
        np.testing.assert_array_equal(back[m], c[m])
    assert back.to_json() == text
    path = tmp_path / "c.json"
    assert c.to_json(path) == path.read_text()
    assert Comparison.from_json(path).to_json() == text
    assert Comparison.from_json(str(path)).to_json() == text
    # NaN survives as null
    nan = Comparison(measures=("x",), layers_a=["a"], layers_b=["b", "c"], values={"x": [[math.nan, 0.5]]},
                     n_samples=3)
    assert '"values": {\n  "x": [\n   [\n    null' in nan.to_json() or "null" in nan.to_json()
    again = Comparison.from_json(nan.to_json())
    assert math.isnan(again["x"][0, 0]) and again["x"][0, 1] == 0.5
    with pytest.raises(ValueError, match="not a serialised Comparison"):
        Comparison.from_json('{"a": 1}')
    with pytest.raises(KeyError, match="was not computed"):
        c["cca"]


def test_to_dataframe(small_comparison, monkeypatch):
    pd = pytest.importorskip("pandas")
    c = small_comparison
    df = c.to_dataframe()
    assert list(df.columns) == ["layer_a", "layer_b", "measure", "value"]
    assert len(df) == 2 * 4 * 2
    row = df[(df.layer_a == "2") & (df.layer_b == "1") & (df.measure == "rsa")]
    assert row.value.item() == c["rsa"][2, 1]
    assert set(c.to_dataframe("linear_cka").measure) == {"linear_cka"}
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        c.to_dataframe()
    assert isinstance(pd.DataFrame, type)


def test_table_and_plot(tmp_path, small_comparison):
    c = small_comparison
    t = c.table()
    assert "linear_cka" in t and "rsa  (reservoir subset of 50 samples)" in t
    lines = c.table("linear_cka").splitlines()
    assert lines[0] == "linear_cka" and lines[1].split() == ["A", "\\", "B", "0", "1"]
    assert lines[2].split()[0] == "0" and float(lines[2].split()[1]) == pytest.approx(c["linear_cka"][0, 0], abs=1e-4)
    assert len(lines) == 2 + 4
    for measure, annotate in ((None, True), ("rsa", False)):
        out = c.plot(tmp_path / f"h_{measure}.png", measure, annotate=annotate)
        data = open(out, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert "Comparison(" in repr(c)


def test_progress_bar(two_models, capsys):
    pytest.importorskip("tqdm")
    A, B, data, layers, _, _ = two_models
    c = compare(A, B, data, layers_a=["0"], layers_b=["0"], progress=True)
    assert c.n_samples == N
    c = compare_activations({"x": np.ones((5, 2)) + np.arange(10).reshape(5, 2) ** 2}, progress=True)
    assert c["linear_cka"].shape == (1, 1)


# ------------------------------------------------------------------------------- memory

def test_memory_fallback_to_reservoir_and_refusal():
    # layers wide relative to the samples: the streamed d x d state (MiB) does not fit in the budget,
    # but all samples fit in the reservoir: the feature-space measures take their sample path, exactly
    torch.manual_seed(5)
    A = nn.Sequential(nn.Linear(6, 150), nn.ReLU(), nn.Linear(150, 5)).double()
    B = nn.Sequential(nn.Linear(6, 120), nn.Tanh(), nn.Linear(120, 5)).double()
    data = batches(X, 16)
    layers = ["0", "1", "2"]
    fa, fb = concat_acts(A, layers, data), concat_acts(B, layers, data)
    ms = ("linear_cka", "debiased_cka", "procrustes", "rsa")
    limit = 2 ** 20
    c = compare(A, B, data, layers_a=layers, layers_b=layers, measures=ms, memory_limit=limit, reservoir=N)
    assert c.info["route"] == "reservoir" and c.subset == {}
    assert c.info["sources"] == {m: "reservoir" for m in ms}
    assert c.info["memory"]["reservoir_bytes"] <= limit
    for m in ms:
        np.testing.assert_allclose(c[m], in_memory(m, fa, fb, layers, layers), rtol=1e-10, err_msg=m)
    streamed = compare(A, B, data, layers_a=layers, layers_b=layers, measures=ms, reservoir=N)
    assert streamed.info["route"] == "streamed" and streamed.info["memory"]["feature_state_bytes"] > limit
    for m in ms:
        np.testing.assert_allclose(c[m], streamed[m], rtol=1e-10, err_msg=m)
    # more samples than the reservoir: refused (during the pass, or up front when n is known) ...
    with pytest.raises(cg.MemoryBudgetError, match="more than reservoir=50 samples"):
        compare(A, B, data, layers_a=layers, layers_b=layers, measures=("linear_cka", "rsa"), memory_limit=limit,
                reservoir=50)
    # ... unless only linear CKA is asked for: route="auto" then sizes the reservoir to the (estimated)
    # sample count for its Gram path, as every sample fits in the budget, and stays exact
    c = compare(A, B, data, layers_a=layers, layers_b=layers, memory_limit=limit, reservoir=50)
    assert c.info["route"] == "reservoir" and c.info["route_reason"].startswith("auto")
    np.testing.assert_allclose(c["linear_cka"], in_memory("linear_cka", fa, fb, layers, layers), rtol=1e-10)
    with pytest.raises(cg.MemoryBudgetError, match="would need all 90 samples"):
        compare_activations(fa, fb, measures=("linear_cka", "rsa"), memory_limit=limit, reservoir=50)
    c = compare_activations(fa, fb, memory_limit=limit, reservoir=50)
    assert c.info["route"] == "reservoir" and c.n_samples == 90
    with pytest.raises(cg.MemoryBudgetError, match="also beyond memory_limit"):
        compare(A, B, data, layers_a=layers, layers_b=layers, memory_limit=50_000, reservoir=N)
    with pytest.raises(cg.MemoryBudgetError, match="reservoir for the sample-space measures"):
        compare(A, B, data, layers_a=layers, layers_b=layers, measures="rsa", memory_limit=50_000)


# ------------------------------------------------------------------------------- errors

def test_errors(two_models):
    A, B, data, layers, fa, fb = two_models
    with pytest.raises(ValueError, match=r"unknown measure 'linear_ckaa' \(did you mean \['linear_cka'"):
        compare(A, B, data, measures=("linear_ckaa",))
    with pytest.raises(ValueError, match="available: .*rsa"):
        compare_activations(fa, fb, measures="nope")
    with pytest.raises(ValueError, match="batch-dependent estimator"):
        compare(A, B, data, measures="minibatch_cka")
    assert "minibatch_cka" not in available_measures() and "rbf_cka" in available_measures()
    with pytest.raises(ValueError, match="no batches"):
        compare(A, B, [])
    with pytest.raises(ValueError, match="no samples"):
        compare(A, B, [X[:0]])
    with pytest.raises(TypeError, match="data is required"):
        compare(A, B)
    with pytest.raises(ValueError, match="unknown layer '9'"):
        compare(A, B, data, layers_a=["9"])
    with pytest.raises(ValueError, match="not among measures"):
        compare(A, B, data, measure_options={"rsa": {}})
    with pytest.raises(ValueError, match="max_batches"):
        compare(A, B, data, max_batches=0)
    bad = X.clone()
    bad[50, 2] = float("nan")

    class Poison(nn.Module):
        def forward(self, x):
            return x * torch.where(torch.arange(x.shape[1]) == 1, torch.inf, 1.0).to(x)

    P = nn.Sequential(nn.Linear(6, 4).double(), Poison())
    with pytest.raises(ValueError, match=r"layer '0' of model_a contain NaN or Inf"):
        compare(A, B, batches(bad, 16), layers_a=["0"], layers_b=["0"])
    with pytest.raises(ValueError, match=r"layer '1' of model_b contain NaN or Inf"):
        compare(A, P, data, layers_a=["0"], layers_b=["1"], measures="rsa")
    with pytest.raises(ValueError, match=r"layer 'x' of acts_b contain NaN or Inf"):
        compare_activations(fa, {"x": np.where(np.arange(N)[:, None] == 80, np.nan, fb["0"])})
    # mismatched sample counts between the activation sets
    with pytest.raises(ValueError, match="different numbers of samples"):
        compare_activations(fa, {"x": fb["0"][:50]})
    with pytest.raises(ValueError, match="unknown layer 'zz'"):
        compare_activations(fa, fb, layers_b=["zz"])
    with pytest.raises(ValueError, match="unsupported file type"):
        compare_activations(__file__)
    with pytest.raises(FileNotFoundError):
        compare_activations("/nonexistent/acts.npy")
    with pytest.raises(TypeError, match="dict layer -> array"):
        compare_activations([1, 2])

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 6).double()

        def forward(self, x):
            return self.lin(self.lin(x))

    with pytest.raises(ValueError, match="ran 2 times"):
        compare(Twice(), None, data, layers_a=["lin"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(A, B, data, layers_a=["0"], layers_b=["0"])  # nothing to warn about


def test_fast_cka_path_equals_generic_path(monkeypatch):
    """finish() computes linear / debiased CKA from per-layer parts computed once (no per-pair
    CrossStats); the values equal the generic stats= path (forced here by a path option) and the
    in-memory measures, including a constant feature and an all-constant layer (NaN + warning)."""
    from congruence.comparison import _Streamer
    from congruence.similarity import UndefinedSimilarityWarning

    rng = np.random.default_rng(3)
    n = 300
    acts = {"l0": rng.standard_normal((n, 7)) * 3 + 2, "l1": rng.standard_normal((n, 5)),
            "l2": rng.standard_normal((n, 6)) @ rng.standard_normal((6, 9)), "l3": np.full((n, 4), 1.5)}
    acts["l1"][:, 2] = -4.0  # one constant feature
    acts["l2"] += 0.5 * acts["l0"][:, :1]
    other = {"m0": rng.standard_normal((n, 6)) + acts["l0"][:, :6], "m1": np.full((n, 3), 2.0)}
    ms = ("linear_cka", "debiased_cka")
    generic_opts = {m: {"path": "features"} for m in ms}  # an option keeps the generic stats= path
    calls = []
    orig = _Streamer._stats
    monkeypatch.setattr(_Streamer, "_stats", lambda self, kx, ky: calls.append((kx, ky)) or orig(self, kx, ky))
    for b in (None, other):
        with pytest.warns(UndefinedSimilarityWarning):
            fast = compare_activations(acts, b, measures=ms, batch_size=70)
        assert calls == []  # no per-pair CrossStats on the fast path
        with pytest.warns(UndefinedSimilarityWarning):
            slow = compare_activations(acts, b, measures=ms, batch_size=70, measure_options=generic_opts)
        assert calls
        calls.clear()
        fb = acts if b is None else b
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedSimilarityWarning)
            ref = {m: in_memory(m, acts, fb, list(acts), list(fb)) for m in ms}
        for m in ms:
            f, s = fast[m], slow[m]
            np.testing.assert_array_equal(np.isnan(f), np.isnan(s))
            np.testing.assert_array_equal(np.isnan(f), np.isnan(ref[m]))
            assert np.isnan(f[3]).all()  # the all-constant layer
            ok = ~np.isnan(f)
            np.testing.assert_allclose(f[ok], s[ok], rtol=1e-12, atol=0)
            np.testing.assert_allclose(f[ok], ref[m][ok], rtol=1e-9, atol=1e-12)
        if b is None:
            for m in ms:
                np.testing.assert_allclose(fast[m], fast[m].T, rtol=1e-12, equal_nan=True)
                assert np.allclose(np.diag(fast["linear_cka"])[:3], 1.0)
        else:
            assert np.isnan(fast["linear_cka"][:, 1]).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_overlapping_layer_lists_of_one_model(dtype):
    # layers_a and layers_b overlap in a different order: the cross blocks of layer "0" are not
    # contiguous in the streamed panel, so they take the per-pair route; all must equal in memory
    A = mlp(3).to(dtype)
    data = batches(X.to(dtype), 23)
    la, lb = ["0", "2"], ["0", "4", "3"]
    c = compare(A, None, data, layers_a=la, layers_b=lb, measures=("linear_cka", "debiased_cka", "cca"))
    acts = concat_acts(A, ["0", "2", "3", "4"], data)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    for m in ("linear_cka", "debiased_cka", "cca"):
        np.testing.assert_allclose(c[m], in_memory(m, acts, acts, la, lb), rtol=rtol, err_msg=m)
    assert c.info["precision"] == str(dtype).replace("torch.", "")
