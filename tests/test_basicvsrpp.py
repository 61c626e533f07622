"""BasicVSR++ entries: parameter counts, upstream key layout, checkpoint loading, forward pass against an independent
upstream-indexed reference (tiny widths: the logic does not depend on them)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)
from helpers.basicvsrpp_ref import CheapFlow, randomise_offsets, reference_features, reference_forward

from ntirekit.core.registry import BASELINES, discover
from ntirekit.core.spec import Entry, read_spec
from ntirekit.core.weights import extract_state_dict, normalise_keys, read_checkpoint
from ntirekit.models.basicvsrpp import BasicVSRPlusPlus

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry():
    return discover([BASELINES], include_defaults=False)


def test_x4_form_has_the_published_parameter_count(registry):
    entry = registry["basicvsrpp_x4"]
    model = entry.build()
    assert sum(p.numel() for p in model.parameters()) == 7_322_927 == entry.spec.published["params"]
    assert (entry.spec.track, entry.spec.task, entry.spec.scale, entry.spec.data_range) == ("vqe", "sr", 4, 1.0)
    assert entry.spec.frames > 1 and entry.spec.weights is None


def test_qe_entries_build(registry):
    qe = registry["basicvsrpp"].build()
    pqf = registry["pqf_basicvsrpp"].build()
    for entry in (registry["basicvsrpp"], registry["pqf_basicvsrpp"]):
        assert (entry.spec.track, entry.spec.task, entry.spec.scale, entry.spec.frames > 1) == ("vqe", "qe", 1, True)
    # QE form = x4 form - feat_extract's input conv (3->64) + two stride-2 convs (3->64, 64->64) + a 64->64 input conv
    x4 = 7_322_927
    assert sum(p.numel() for p in qe.parameters()) == x4 - (3 * 64 * 9 + 64) + (3 * 64 * 9 + 64) + 2 * (64 * 64 * 9 + 64)
    # PQF: 50 more reconstruction blocks (two 64->64 3x3 convs each)
    assert sum(p.numel() for p in pqf.parameters()) == sum(p.numel() for p in qe.parameters()) + 50 * 2 * (
        64 * 64 * 9 + 64)
    assert len(pqf.reconstruction.main[2]) == 55


def test_key_layout_matches_mmediting():
    x4 = {k: tuple(v.shape) for k, v in BasicVSRPlusPlus().state_dict().items()}
    expected = {
        "spynet.mean": (1, 3, 1, 1),
        "spynet.basic_module.5.basic_module.4.conv.weight": (2, 16, 7, 7),
        "feat_extract.main.0.weight": (64, 3, 3, 3),
        "feat_extract.main.2.4.conv2.bias": (64,),
        "deform_align.backward_1.weight": (64, 128, 3, 3),
        "deform_align.backward_1.bias": (64,),
        "deform_align.forward_2.conv_offset.0.weight": (64, 196, 3, 3),
        "deform_align.forward_2.conv_offset.6.weight": (432, 64, 3, 3),
        "backbone.backward_1.main.0.weight": (64, 128, 3, 3),
        "backbone.forward_2.main.0.weight": (64, 320, 3, 3),
        "backbone.forward_2.main.2.6.conv2.weight": (64, 64, 3, 3),
        "reconstruction.main.0.weight": (64, 320, 3, 3),
        "reconstruction.main.2.4.conv1.bias": (64,),
        "upsample1.upsample_conv.weight": (256, 64, 3, 3),
        "upsample2.upsample_conv.weight": (256, 64, 3, 3),
        "conv_hr.weight": (64, 64, 3, 3),
        "conv_last.weight": (3, 64, 3, 3),
    }
    for key, shape in expected.items():
        assert x4.get(key) == shape, key
    assert not any(k.startswith(("fusion", "img_upsample", "lrelu")) for k in x4)
    qe = BasicVSRPlusPlus(is_low_res_input=False).state_dict()
    assert qe["feat_extract.0.weight"].shape == (64, 3, 3, 3)
    assert qe["feat_extract.2.weight"].shape == (64, 64, 3, 3)
    assert qe["feat_extract.4.main.0.weight"].shape == (64, 64, 3, 3)


TINY = dict(mid_channels=16, num_blocks=1)


def _tiny_entry(tmp_path: Path, name: str = "basicvsrpp") -> Entry:
    """The baseline's folder copied with tiny widths and a [weights] section for an mmediting-style checkpoint."""
    src = BASELINES / name
    folder = tmp_path / name
    shutil.copytree(src, folder)
    spec = (folder / "entry.toml").read_text()
    spec = spec.replace("mid_channels = 64, num_blocks = 7", "mid_channels = 16, num_blocks = 1")
    spec += textwrap.dedent('''
        [weights]
        file = "mmedit_ckpt.pth"
        strip_prefix = "generator."
        ''')
    (folder / "entry.toml").write_text(spec)
    return Entry(read_spec(folder), folder)


def test_mmediting_checkpoint_loads_strictly(tmp_path):
    entry = _tiny_entry(tmp_path)
    torch.manual_seed(0)
    source = entry.build()
    randomise_offsets(source)
    # mmediting saves {"meta": ..., "state_dict": {"generator.<key>": tensor}}
    ckpt = {"meta": {"mmedit_version": "0.x", "iter": 600000},
            "state_dict": {f"generator.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "mmedit_ckpt.pth"
    torch.save(ckpt, path)

    state = normalise_keys(extract_state_dict(read_checkpoint(path)), strip_prefix="generator.")
    fresh = entry.build()
    fresh.load_state_dict(state, strict=True)

    loaded = entry.load(path)
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_input_checks():
    qe = BasicVSRPlusPlus(**TINY, is_low_res_input=False)
    with pytest.raises(ValueError, match="multiples of 4"):
        qe(torch.rand(1, 2, 3, 256, 258))
    with pytest.raises(ValueError, match="at least 256"):
        qe(torch.rand(1, 2, 3, 252, 256))
    with pytest.raises(ValueError, match="2 frames"):
        qe(torch.rand(1, 1, 3, 256, 256))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


@pytest.mark.slow
@pytest.mark.parametrize("low_res", [True, False], ids=["x4", "qe"])
def test_features_match_upstream_indexed_reference(low_res):
    torch.manual_seed(1)
    model = BasicVSRPlusPlus(**TINY, is_low_res_input=low_res).eval()
    randomise_offsets(model, scale=0.05, seed=2)
    model.spynet = CheapFlow()  # SPyNet dominates the cost at these sizes and is the same function in both
    x = torch.rand(1, 4, 3, 64, 68) if low_res else torch.rand(1, 4, 3, 256, 260)
    with torch.no_grad():
        feats = model.features(x)
        ref = reference_features(model, x)
    assert list(feats) == list(ref) == ["spatial", "backward_1", "forward_1", "backward_2", "forward_2"]
    for name in ref:
        for i, (a, b) in enumerate(zip(feats[name], ref[name], strict=True)):
            assert _close(a, b), (name, i)


@pytest.mark.slow
def test_forward_matches_reference_output():
    torch.manual_seed(3)
    model = BasicVSRPlusPlus(**TINY, is_low_res_input=False).eval()
    randomise_offsets(model, scale=0.05, seed=4)
    x = torch.rand(1, 2, 3, 256, 256)
    with torch.no_grad():
        out = model(x)
        ref = reference_forward(model, x)
    assert out.shape == x.shape and torch.isfinite(out).all() and _close(out, ref)


def test_x4_output_shape():
    model = BasicVSRPlusPlus(**TINY, is_low_res_input=True).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 64, 72))
    assert out.shape == (1, 2, 3, 256, 288) and torch.isfinite(out).all()


@pytest.mark.slow
def test_zero_flow_form_equals_a_zeroed_spynet() -> None:
    """``flow="zero"`` (no flow network) is the same function as SPyNet with every level's last conv zeroed."""
    from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

    torch.manual_seed(0)
    kwargs = dict(mid_channels=8, num_blocks=1, num_blocks_reconstruction=1, is_low_res_input=True)
    with_spynet = PQFBasicVSRPlusPlus(**kwargs).eval()
    for level in with_spynet.spynet.basic_module:
        torch.nn.init.zeros_(level.basic_module[-1].conv.weight)
        torch.nn.init.zeros_(level.basic_module[-1].conv.bias)
    zero = PQFBasicVSRPlusPlus(**kwargs, flow="zero").eval()
    state = {k: v for k, v in with_spynet.state_dict().items() if not k.startswith("spynet.")}
    zero.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(with_spynet(x), zero(x))
    assert sum(p.numel() for p in with_spynet.spynet.parameters()) == 1_440_300
    with pytest.raises(ValueError, match="flow must be"):
        PQFBasicVSRPlusPlus(**kwargs, flow="raft")
