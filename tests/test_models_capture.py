"""congruence.models: forward-hook capture, output selection, spatial policies, layer lists."""

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from congruence.models import ActivationRecorder, capture_activations, list_layers  # noqa: E402


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 4))


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))


class FakeModelOutput(OrderedDict):
    """Like transformers' ModelOutput: an OrderedDict with attribute access."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class TupleEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 6)

    def forward(self, x):
        h = self.lin(x)
        return h, torch.softmax(h, 1) * 3.0


class DictHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 5)

    def forward(self, h):
        return {"hidden": self.lin(h), "logits": self.lin(h)[:, :2]}


class HFLikeBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 7)

    def forward(self, h):
        out = self.lin(h)
        return FakeModelOutput(last_hidden_state=out, pooler_output=out[:, :3].tanh(), attentions=None)


class MultiOutput(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.enc = TupleEncoder()
        self.head = DictHead()
        self.hf = HFLikeBlock()
        self.vec = nn.Identity()

    def forward(self, x):
        h, _ = self.enc(x)
        d = self.head(h)
        return self.hf(d["hidden"]).last_hidden_state


class Summer(nn.Module):
    def forward(self, x):
        return x.sum(1)


class Scalar(nn.Module):
    def forward(self, x):
        return x.sum()


class WithVector(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)
        self.sum = Summer()
        self.total = Scalar()

    def forward(self, x):
        h = self.lin(x)
        return h, self.sum(h), self.total(h)


X = torch.randn(10, 8, generator=torch.Generator().manual_seed(1))
IMG = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))


# --------------------------------------------------------------------------------- list_layers

def test_list_layers_leaves_skip_dropout_and_identity():
    assert list_layers(mlp()) == ["0", "1", "3", "4", "5"]
    assert list_layers(cnn()) == ["0", "1", "2", "3", "4"]
    # HFLikeBlock's class name ends in "Block": a common block, listed whole
    assert list_layers(MultiOutput()) == ["enc.lin", "head.lin", "hf"]
    assert list_layers(MultiOutput(), blocks=False) == ["enc.lin", "head.lin", "hf.lin"]


def test_list_layers_blocks():
    class ResBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return x + self.b(self.a(x).relu())

    model = nn.Sequential(nn.Linear(8, 4), nn.Sequential(ResBlock(), ResBlock()), nn.Linear(4, 2))
    assert list_layers(model) == ["0", "1.0", "1.1", "2"]
    assert list_layers(model, blocks=False) == ["0", "1.0.a", "1.0.b", "1.1.a", "1.1.b", "2"]
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    assert list_layers(nn.Sequential(nn.Linear(8, 8), enc)) == ["0", "1"]
    with pytest.raises(TypeError, match="nn.Module"):
        list_layers("not a model")


# --------------------------------------------------------------------------------- capture

def test_capture_mlp_values():
    model = mlp()
    acts = capture_activations(model, ["0", "3", "5"], X)
    assert list(acts) == ["0", "3", "5"]
    with torch.no_grad():
        h0 = model[0](X)
        h3 = model[3](model[1](h0))
        h5 = model[5](model[4](h3))
    torch.testing.assert_close(acts["0"], h0, rtol=0, atol=0)
    torch.testing.assert_close(acts["3"], h3, rtol=0, atol=0)
    torch.testing.assert_close(acts["5"], h5, rtol=0, atol=0)
    assert not acts["0"].requires_grad
    # default layers, a single name and module objects
    assert list(capture_activations(model, None, X)) == list_layers(model)
    assert list(capture_activations(model, "3", X)) == ["3"]
    assert list(capture_activations(model, [model[4], model[0]], X)) == ["4", "0"]


def test_capture_restores_modes_and_is_deterministic():
    model = mlp()
    model.train()
    model[3].eval()  # a mixed state must be restored as it was
    a1 = capture_activations(model, ["4"], X)["4"]
    a2 = capture_activations(model, ["4"], X)["4"]
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)  # dropout off during capture
    assert model.training and model[2].training and not model[3].training
    assert torch.is_grad_enabled()
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("spatial", ["flatten", "mean", "positions"])
def test_spatial_policies_cnn(spatial):
    model = cnn()
    acts = capture_activations(model, ["0", "2", "4"], IMG, spatial=spatial)
    with torch.no_grad():
        conv = model[0](IMG)
        pool = model[2](model[1](conv))
        out = model(IMG)
    torch.testing.assert_close(acts["4"], out, rtol=0, atol=0)  # 2-D passes through
    N, C, H, W = conv.shape
    if spatial == "flatten":
        assert acts["0"].shape == (N, C * H * W)
        torch.testing.assert_close(acts["0"], conv.reshape(N, -1), rtol=0, atol=0)
        assert acts["0"][2, 1 * H * W + 3 * W + 5] == conv[2, 1, 3, 5]
        torch.testing.assert_close(acts["2"], pool.reshape(N, -1), rtol=0, atol=0)
    elif spatial == "mean":
        assert acts["0"].shape == (N, C)
        torch.testing.assert_close(acts["0"], conv.mean(dim=(2, 3)))
        torch.testing.assert_close(acts["2"][4, 2], pool[4, 2].mean())
    else:
        assert acts["0"].shape == (N * H * W, C)
        assert acts["2"].shape == (N * 4 * 4, C)
        torch.testing.assert_close(acts["0"], conv.permute(0, 2, 3, 1).reshape(-1, C), rtol=0, atol=0)
        n, h, w = 3, 2, 7
        torch.testing.assert_close(acts["0"][n * H * W + h * W + w], conv[n, :, h, w], rtol=0, atol=0)


def test_spatial_per_layer_and_bad_policy():
    model = cnn()
    acts = capture_activations(model, ["0", "2"], IMG, spatial={"0": "mean"})
    assert acts["0"].shape == (6, 4) and acts["2"].shape == (6, 64)
    with pytest.raises(ValueError, match="spatial must be one of"):
        capture_activations(model, ["0"], IMG, spatial="avg")
    with pytest.raises(ValueError, match="unknown layers"):
        capture_activations(model, ["0"], IMG, spatial={"9": "mean"})


def test_low_dimensional_outputs_raise_naming_the_layer():
    model = WithVector()
    assert capture_activations(model, ["lin"], X)["lin"].shape == (10, 3)
    with pytest.raises(ValueError, match=r"layer 'sum' produced a 1-D output"):
        capture_activations(model, ["sum"], X)
    with pytest.raises(ValueError, match=r"layer 'total' produced a 0-D output"):
        capture_activations(model, ["total"], X)


# --------------------------------------------------------------------------------- selectors

def test_selectors_tuple_dict_model_output():
    model = MultiOutput()
    with torch.no_grad():
        h, attn = model.enc(X)
        d = model.head(h)
        o = model.hf(d["hidden"])
    acts = capture_activations(model, ["enc", "hf"], X)  # tuple -> element 0, ModelOutput -> last_hidden_state
    torch.testing.assert_close(acts["enc"], h, rtol=0, atol=0)
    torch.testing.assert_close(acts["hf"], o.last_hidden_state, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"layer 'head' returned a dict with keys \['hidden', 'logits'\]"):
        capture_activations(model, ["head"], X)
    acts = capture_activations(model, ["enc", "head", "hf"], X,
                               select={"enc": 1, "head": "logits", "hf": "pooler_output"})
    torch.testing.assert_close(acts["enc"], attn, rtol=0, atol=0)
    torch.testing.assert_close(acts["head"], d["logits"], rtol=0, atol=0)
    torch.testing.assert_close(acts["hf"], o.pooler_output, rtol=0, atol=0)
    # int on a ModelOutput indexes its non-None values (ModelOutput.to_tuple()); a callable gets the output
    acts = capture_activations(model, ["hf"], X, select=1)
    torch.testing.assert_close(acts["hf"], o.pooler_output, rtol=0, atol=0)
    acts = capture_activations(model, ["head"], X, select=lambda out: out["hidden"] * 2)
    torch.testing.assert_close(acts["head"], d["hidden"] * 2, rtol=0, atol=0)


def test_selector_errors():
    model = MultiOutput()
    with pytest.raises(ValueError, match="no key 'nope'"):
        capture_activations(model, ["head"], X, select="nope")
    with pytest.raises(ValueError, match="out of range"):
        capture_activations(model, ["enc"], X, select=5)
    with pytest.raises(TypeError, match="a tensor is needed"):
        capture_activations(model, ["hf"], X, select="attentions")  # None is not a tensor
    with pytest.raises(TypeError, match="select must be"):
        capture_activations(model, ["hf"], X, select=2.5)
    with pytest.raises(TypeError, match="int selector"):
        capture_activations(mlp(), ["0"], X, select=0)


# --------------------------------------------------------------------------------- layers / inputs

def test_unknown_layers_and_modules():
    model = MultiOutput()
    with pytest.raises(ValueError, match=r"unknown layer 'enc.lni'.*close matches: \['enc.lin'"):
        capture_activations(model, ["enc.lni"], X)
    with pytest.raises(ValueError, match="not a submodule"):
        capture_activations(model, [nn.Linear(2, 2)], X)
    with pytest.raises(ValueError, match="listed twice"):
        capture_activations(model, ["enc", model.enc], X)
    with pytest.raises(TypeError, match="layer names"):
        capture_activations(model, [3], X)
    with pytest.raises(ValueError, match="did not run"):
        capture_activations(model, ["vec"], X)  # an Identity the forward never calls


def test_inputs_tuple_and_dict():
    model = mlp()
    ref = capture_activations(model, ["3"], X)["3"]
    torch.testing.assert_close(capture_activations(model, ["3"], (X, torch.zeros(10)))["3"], ref, rtol=0, atol=0)

    class Kw(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, input_ids, scale=1.0):
            return self.net(input_ids * scale)

    kw = Kw()
    out = capture_activations(kw, ["net.3"], {"input_ids": X, "scale": 2.0})["net.3"]
    torch.testing.assert_close(out, capture_activations(kw.net, ["3"], 2.0 * X)["3"], rtol=0, atol=0)


def test_recorder_keeps_latest_batch_and_removes_hooks():
    model = mlp().eval()  # the recorder leaves the mode alone: eval for a deterministic dropout
    with ActivationRecorder(model, ["0", "5"]) as rec:
        assert rec.layers == ["0", "5"]
        model(X)
        first = rec["5"].clone()
        model(X[:4])
        assert rec.activations["5"].shape == (4, 4)
        assert rec.calls == {"0": 2, "5": 2}
        assert rec.shapes["0"] == (4, 16)
        torch.testing.assert_close(rec["5"], first[:4])
        rec.clear()
        assert rec.activations == {} and rec.calls == {"0": 0, "5": 0}
        with pytest.raises(RuntimeError, match="already active"):
            rec.__enter__()
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="1-D"):
        with ActivationRecorder(WithVector(), ["sum"]) as rec2:
            rec2.model(X)
    assert not any(m._forward_hooks for m in rec2.model.modules())


def test_outputs_changed_in_place_later_are_captured_as_they_left_the_layer():
    # ResNet style: BatchNorm -> ReLU(inplace=True) rewrites the BatchNorm's output tensor
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(inplace=True), nn.Linear(6, 3)).double().eval()
    x = torch.randn(20, 4, dtype=torch.float64)
    with torch.no_grad():
        expected = model[1](model[0](x))  # the BatchNorm output before the ReLU
    got = capture_activations(model, ["1", "2"], x)
    assert torch.equal(got["1"], expected)
    assert (expected < 0).any() and (got["2"] >= 0).all()
    # compare streams the same values (the recorder clones the layer from then on)
    import congruence as cg

    c = cg.compare(model, None, list(x.split(5)), layers_a=["1"], layers_b=["2"], measures="linear_cka")
    assert c["linear_cka"][0, 0] == pytest.approx(cg.linear_cka(expected.numpy(), got["2"].numpy()), rel=1e-12)
    rec = ActivationRecorder(model, ["1"])
    with rec, torch.no_grad():
        model(x)
        assert rec.modified() == ["1"]
