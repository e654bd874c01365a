"""compare's routes for the feature-space measures: the streamed d×d state ("features") and the
sample-space Gram path on every sample ("samples"), chosen by cost and memory ("auto")."""

import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import congruence as cg  # noqa: E402
from congruence import MemoryBudgetError  # noqa: E402
from congruence.comparison import compare, compare_activations  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from reference_similarity import ref_linear_cka_gram as ref_linear_cka  # noqa: E402


def wide(seed, width=80, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 30)).to(dtype)


X = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5
LAYERS = ["0", "1", "2", "4"]


def acts(model, x):
    out = cg.models.capture_activations(model, LAYERS, x)
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("self_comparison", [False, True])
def test_samples_route_equals_features_route_and_the_reference(dtype, self_comparison):
    A, B = wide(0, dtype=dtype), wide(1, dtype=dtype)
    data = list(X.to(dtype).split(7))
    other = None if self_comparison else B
    f = compare(A, other, data, layers_a=LAYERS, layers_b=LAYERS, route="features")
    s = compare(A, other, data, layers_a=LAYERS, layers_b=LAYERS, route="samples")
    assert f.info["route"] == "streamed" and s.info["route"] == "reservoir"
    rtol = 1e-10 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(s["linear_cka"], f["linear_cka"], rtol=rtol)
    fa, fb = acts(A, X.to(dtype)), acts(B if other is not None else A, X.to(dtype))
    ref = np.array([[ref_linear_cka(fa[a], fb[b]) for b in LAYERS] for a in LAYERS])
    np.testing.assert_allclose(s["linear_cka"], ref, rtol=rtol)
    assert s.info["precision"] == str(dtype).replace("torch.", "")


def test_samples_route_treats_constant_features_like_the_feature_route():
    # ReLU units dead on every sample and a constant column added to one layer
    rng = np.random.default_rng(0)
    a = {"p": rng.standard_normal((30, 50)), "q": np.maximum(rng.standard_normal((30, 40)) - 1.5, 0)}
    a["p"][:, 3] = 7.25
    b = {"r": rng.standard_normal((30, 60)) + 100.0}
    f = compare_activations(a, b, route="features", batch_size=8)
    s = compare_activations(a, b, route="samples", batch_size=8)
    np.testing.assert_allclose(s["linear_cka"], f["linear_cka"], rtol=1e-10)


def test_auto_takes_the_gram_path_when_samples_are_few():
    A, B = wide(0), wide(1)
    data = list(X.split(10))  # 40 samples, widths 80: the Gram path is far cheaper
    c = compare(A, B, data, layers_a=LAYERS, layers_b=LAYERS)
    assert c.info["route"] == "reservoir" and c.info["route_reason"].startswith("auto")
    f = compare(A, B, data, layers_a=LAYERS, layers_b=LAYERS, route="features")
    np.testing.assert_allclose(c["linear_cka"], f["linear_cka"], rtol=1e-10)
    # other measures than linear CKA keep the feature route
    c2 = compare(A, B, data, layers_a=LAYERS, layers_b=LAYERS, measures=("linear_cka", "cca"))
    assert c2.info["route"] == "streamed"
    # many samples of narrow layers: features
    many = list(torch.randn(600, 5, dtype=torch.float64).split(100))
    c3 = compare(A, B, many, layers_a=["4"], layers_b=["4"])
    assert c3.info["route"] == "streamed"


class Undercounted:
    """Yields more batches than len() promises (a generator-backed loader may do that)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return 2

    def __iter__(self):
        return iter(self.batches)


def test_auto_moves_to_features_when_more_samples_arrive():
    A, B = wide(0), wide(1)
    data = list(X.split(10))
    c = compare(A, B, Undercounted(data), layers_a=LAYERS, layers_b=LAYERS, measures=("linear_cka", "rsa"),
                reservoir=20)
    assert c.info["route"] == "streamed" and "replayed" in c.info["route_reason"]
    f = compare(A, B, data, layers_a=LAYERS, layers_b=LAYERS, route="features")
    np.testing.assert_allclose(c["linear_cka"], f["linear_cka"], rtol=1e-10)
    assert c.n_samples == 40 and c.info["reservoir"]["size"] == 20  # rsa on a 20-sample reservoir
    c = compare(A, B, Undercounted(data), layers_a=LAYERS, layers_b=LAYERS, reservoir=20)
    assert c.info["route"] == "streamed" and "reservoir" not in c.info
    np.testing.assert_allclose(c["linear_cka"], f["linear_cka"], rtol=1e-10)


def test_route_errors():
    A = wide(0)
    data = list(X.split(10))
    with pytest.raises(ValueError, match="route must be one of"):
        compare(A, None, data, route="gram")
    with pytest.raises(ValueError, match="route must be one of"):
        compare_activations({"a": np.ones((4, 2))}, route=None)
    with pytest.raises(MemoryBudgetError, match="route='features'"):
        compare(A, None, data, layers_a=LAYERS, route="features", memory_limit=20_000)
    with pytest.raises(MemoryBudgetError, match="route='samples'"):
        compare(A, None, data, layers_a=LAYERS, route="samples", memory_limit=2_000)
    with pytest.raises(ValueError, match="num_threads"):
        compare(A, None, data, num_threads=0)


def test_samples_route_of_a_constant_layer_warns_and_gives_nan():
    a = {"z": np.ones((12, 4)), "w": np.random.default_rng(1).standard_normal((12, 3))}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = compare_activations(a, route="samples")
    assert np.isnan(s["linear_cka"][0, 1]) and s["linear_cka"][1, 1] == pytest.approx(1.0)
    assert any("undefined" in str(w.message) for w in rec)


def test_gram_path_never_centres_the_callers_or_shared_tensors():
    # "0" (Identity) returns the input batch itself; "3" (Flatten) is a view of "2"'s output:
    # the kept samples are centred in place, so such aliases must be copied first
    torch.manual_seed(2)
    model = nn.Sequential(nn.Identity(), nn.Linear(5, 40), nn.ReLU(), nn.Flatten(), nn.Linear(40, 3)).double()
    x = X.clone()
    data = list(x.split(8))
    layers = ["0", "2", "3", "4"]
    s = compare(model, None, data, layers_a=layers, route="samples")
    assert torch.equal(x, X)  # the caller's inputs are untouched
    f = compare(model, None, data, layers_a=layers, route="features")
    np.testing.assert_allclose(s["linear_cka"], f["linear_cka"], rtol=1e-10)
    assert s["linear_cka"][1, 2] == pytest.approx(1.0)  # "2" and its flattened view


class ReusesItsOutput(nn.Module):
    """Writes every batch's output into one persistent buffer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 6).double()
        self.buf = None

    def forward(self, x):
        y = self.lin(x)
        if self.buf is None or self.buf.shape != y.shape:
            self.buf = torch.empty_like(y)
        self.buf.copy_(y)
        return self.buf


def test_gram_path_detects_output_buffers_reused_across_batches():
    # the kept samples of batch 1 are overwritten by batch 2: a clear error, not a wrong value
    model = nn.Sequential(ReusesItsOutput(), nn.Tanh())
    data = list(X.split(10))
    with pytest.raises(RuntimeError, match="reuses its output buffers"):
        compare(model, None, data, layers_a=["0", "1"], route="samples")
    f = compare(model, None, data, layers_a=["0", "1"], route="features")
    acts = cg.models.capture_activations(model, ["0", "1"], X)
    assert f["linear_cka"][0, 1] == pytest.approx(ref_linear_cka(acts["0"].numpy(), acts["1"].numpy()), rel=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_staged_flushes_equal_the_in_memory_values(dtype):
    # 3000 samples in batches of 700: rows are staged and flushed at the panel's capacity
    # (1024 rows here), across batch boundaries; debiased CKA's per-sample sums ride along
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3000, 6))
    a = {"p": (z @ rng.standard_normal((6, 20)) + 5.0).astype(dtype)}
    b = {"q": (np.tanh(z) @ rng.standard_normal((6, 15))).astype(dtype), "r": rng.standard_normal((3000, 9)).astype(dtype)}
    c = compare_activations(a, b, measures=("linear_cka", "debiased_cka"), batch_size=700, route="features")
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    for m in ("linear_cka", "debiased_cka"):
        ref = [[getattr(cg, m)(a["p"].astype(np.float64), b[k].astype(np.float64)) for k in ("q", "r")]]
        np.testing.assert_allclose(c[m], ref, rtol=rtol, atol=1e-7 if dtype == np.float32 else 0, err_msg=m)


def test_gram_path_with_mixed_and_half_precision_layers():
    torch.manual_seed(6)
    lin = nn.Linear(5, 30).double()
    model = nn.Sequential(lin, nn.ReLU())
    data = list(X.split(10))
    ref = compare(model, None, data, layers_a=["0", "1"], route="features")

    class Mixed(nn.Module):  # layer "a" float64, layer "b" float16
        def __init__(self):
            super().__init__()
            self.a = nn.Identity()
            self.b = nn.Identity()

        def forward(self, x):
            h = lin(x)
            return self.a(h), self.b(torch.relu(h).half())

    s = compare(Mixed(), None, data, layers_a=["a", "b"], route="samples")
    assert s.info["route"] == "reservoir"
    np.testing.assert_allclose(s["linear_cka"], ref["linear_cka"], rtol=2e-3)  # float16 rounding of "b"
