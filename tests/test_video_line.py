"""BasicVSR, IconVSR, EDVR-M and EDVR-L entries: published parameter counts, upstream key layout, frame-index rules
against literal lists, forward passes of every form, and the networks against upstream-indexed references.

The references below restate mmediting's forward passes (``basicvsr_net.py``, ``iconvsr.py``, ``edvr_net.py``) in
upstream's own indexing (reversed output lists, IconVSR's literal frame padding ``lrs[:, [4, 3]]``, EDVR's window
forward) using the models' sub-modules but none of the kit's loop code. Tiny widths keep them fast; SPyNet is
replaced by a cheap stand-in flow where the test is about the propagation, not the flow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)
from helpers.basicvsrpp_ref import CheapFlow

from ntirekit.core.registry import BASELINES, discover
from ntirekit.core.spec import Entry, read_spec
from ntirekit.eval.clip_inference import enhance_clip
from ntirekit.models.basicvsr import BasicVSRNet, IconVSR, keyframe_indices, refill_windows
from ntirekit.models.edvr import EDVRNet, ModulatedDCNPack, generate_frame_indices, window_indices
from ntirekit.nn.flow import flow_warp
from ntirekit.nn.recurrent import pad_frames

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]

PUBLISHED_PARAMS = {"basicvsr_x4": 6_291_311, "iconvsr_x4": 8_694_991, "edvr_m_x4": 3_300_131,
                    "edvr_l_x4": 20_633_827}
TINY = {"basicvsr": dict(mid_channels=8, num_blocks=1), "iconvsr": dict(mid_channels=8, num_blocks=1),
        "edvr_m": dict(mid_channels=8, num_blocks_extraction=1, num_blocks_reconstruction=1),
        "edvr_l": dict(mid_channels=8, num_blocks_extraction=1, num_blocks_reconstruction=1)}


@pytest.fixture(scope="module")
def registry():
    return discover([BASELINES], include_defaults=False)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() <= rel * max(1.0, b.abs().max().item())


def _randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    """Small random weights for every zero-initialised layer (DCN offset convs, biases) so that offsets, masks and
    biases all matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ModulatedDCNPack):
                m.conv_offset.weight.copy_(torch.randn(m.conv_offset.weight.shape, generator=g) * scale)
            if isinstance(getattr(m, "bias", None), torch.nn.Parameter):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * scale)


# ------------------------------------------------------------------------------------------------ entries and counts

@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_x4_forms_have_the_published_parameter_counts(registry, name):
    entry = registry[name]
    assert _params(entry.build()) == PUBLISHED_PARAMS[name] == entry.spec.published["params"]
    spec = entry.spec
    assert (spec.track, spec.task, spec.scale, spec.data_range, spec.weights) == ("vqe", "sr", 4, 1.0, None)
    assert spec.frames > 1


def test_qe_forms_change_only_the_layers_that_read_frames(registry):
    for name in ("basicvsr", "iconvsr", "edvr_m", "edvr_l"):
        spec = registry[name].spec
        assert (spec.track, spec.task, spec.scale, spec.data_range, spec.weights) == ("vqe", "qe", 1, 1.0, None)
        assert spec.frames > 1
    # a layer reading a frame sees 48 pixel-unshuffled channels instead of 3: 45 more input channels of a 3x3 conv
    extra = 45 * 9
    assert _params(registry["basicvsr"].build()) == 6_291_311 + 2 * extra * 64          # two propagation trunks
    assert _params(registry["iconvsr"].build()) == 8_694_991 + 3 * extra * 64           # + the refill's conv_first
    assert _params(registry["edvr_m"].build()) == 3_300_131 + extra * 64
    assert _params(registry["edvr_l"].build()) == 20_633_827 + extra * 128


def test_edvr_variants_are_the_tsa_configs():
    # the published EDVR-M / EDVR-L counts are mmediting's edvrm_x4_g8 and edvrl_c128b40 configs, TSA included;
    # without TSA the fusion is one 1x1 conv over the 5 aligned features
    no_tsa_m = EDVRNet(64, with_tsa=False)
    no_tsa_l = EDVRNet(128, num_blocks_reconstruction=40, with_tsa=False)
    assert _params(no_tsa_m) == 2_996_259 and _params(no_tsa_l) == 19_419_875


def test_key_layout_matches_mmediting():
    basic = {k: tuple(v.shape) for k, v in BasicVSRNet().state_dict().items()}
    assert basic["spynet.basic_module.0.basic_module.0.conv.weight"] == (32, 8, 7, 7)
    assert basic["spynet.std"] == (1, 3, 1, 1)
    assert basic["backward_resblocks.main.0.weight"] == (64, 67, 3, 3)
    assert basic["forward_resblocks.main.2.29.conv2.bias"] == (64,)
    assert basic["fusion.weight"] == (64, 128, 1, 1)
    assert basic["upsample1.upsample_conv.weight"] == (256, 64, 3, 3)
    assert basic["conv_last.weight"] == (3, 64, 3, 3)

    icon = {k: tuple(v.shape) for k, v in IconVSR().state_dict().items()}
    assert icon["forward_resblocks.main.0.weight"] == (64, 131, 3, 3)
    assert icon["backward_fusion.weight"] == (64, 128, 3, 3)
    assert icon["edvr.conv_first.weight"] == (64, 3, 3, 3)
    assert icon["edvr.fusion.feat_fusion.conv.weight"] == (64, 320, 1, 1)
    assert not any(k.startswith(("edvr.reconstruction", "edvr.upsample", "fusion.")) for k in icon)

    edvr = {k: tuple(v.shape) for k, v in EDVRNet(128, num_blocks_reconstruction=40).state_dict().items()}
    expected = {
        "conv_first.weight": (128, 3, 3, 3),
        "feature_extraction.4.conv1.weight": (128, 128, 3, 3),
        "feat_l3_conv2.conv.weight": (128, 128, 3, 3),
        "pcd_alignment.offset_conv1.l3.conv.weight": (128, 256, 3, 3),
        "pcd_alignment.offset_conv3.l1.conv.bias": (128,),
        "pcd_alignment.dcn_pack.l2.weight": (128, 128, 3, 3),
        "pcd_alignment.dcn_pack.l2.conv_offset.weight": (216, 128, 3, 3),  # 8 groups x 3 x 9 taps
        "pcd_alignment.feat_conv.l1.conv.weight": (128, 256, 3, 3),
        "pcd_alignment.cas_dcnpack.conv_offset.bias": (216,),
        "fusion.temporal_attn1.weight": (128, 128, 3, 3),
        "fusion.spatial_attn1.conv.weight": (128, 640, 1, 1),
        "fusion.spatial_attn_add2.weight": (128, 128, 1, 1),
        "reconstruction.39.conv2.weight": (128, 128, 3, 3),
        "upsample2.upsample_conv.weight": (256, 128, 3, 3),
        "conv_hr.weight": (64, 64, 3, 3),
    }
    for key, shape in expected.items():
        assert edvr.get(key) == shape, key
    assert "pcd_alignment.offset_conv3.l3.conv.weight" not in edvr and "pcd_alignment.feat_conv.l3.conv.weight" \
        not in edvr


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_mmediting_checkpoint_loads_strictly(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(BASELINES / name, folder)
    spec = (folder / "entry.toml").read_text()
    spec = spec.replace("mid_channels = 128", "mid_channels = 8").replace("mid_channels = 64", "mid_channels = 8")
    spec += '\n[weights]\nfile = "mmedit_ckpt.pth"\nstrip_prefix = "generator."\n'
    (folder / "entry.toml").write_text(spec)
    entry = Entry(read_spec(folder), folder)
    torch.manual_seed(0)
    source = entry.build()
    _randomise(source)
    ckpt = {"meta": {"iter": 600000}, "state_dict": {f"generator.{k}": v for k, v in source.state_dict().items()}}
    torch.save(ckpt, tmp_path / "mmedit_ckpt.pth")
    loaded = entry.load(tmp_path / "mmedit_ckpt.pth")
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


# ------------------------------------------------------------------------------------------------ index rules

def test_iconvsr_keyframes_are_every_fifth_frame_and_the_last():
    assert keyframe_indices(12) == [0, 5, 10, 11]
    assert keyframe_indices(11) == [0, 5, 10]
    assert keyframe_indices(5) == [0, 4]
    assert keyframe_indices(2) == [0, 1]
    assert keyframe_indices(1) == [0]
    assert keyframe_indices(7, stride=3) == [0, 3, 6]
    with pytest.raises(ValueError):
        keyframe_indices(0)


def test_frame_indices_follow_basicsr():
    # BasicSR's docstring examples (current frame 0, 5 frames)
    assert generate_frame_indices(0, 10, 5, "replicate") == [0, 0, 0, 1, 2]
    assert generate_frame_indices(0, 10, 5, "reflection_circle") == [4, 3, 0, 1, 2]
    assert generate_frame_indices(9, 10, 5, "replicate") == [7, 8, 9, 9, 9]
    assert generate_frame_indices(9, 10, 5, "reflection_circle") == [7, 8, 9, 6, 5]
    assert generate_frame_indices(1, 10, 7, "reflection_circle") == [6, 5, 0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="odd"):
        generate_frame_indices(0, 10, 4)
    with pytest.raises(ValueError, match="outside"):
        generate_frame_indices(10, 10, 5)
    with pytest.raises(ValueError, match="at least 5"):
        generate_frame_indices(0, 3, 5, "reflection_circle")
    with pytest.raises(ValueError, match="padding"):
        generate_frame_indices(0, 10, 5, "circle")


def test_edvr_windows_at_the_clip_borders():
    assert window_indices(7, 5) == [[4, 3, 0, 1, 2], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5],
                                    [2, 3, 4, 5, 6], [3, 4, 5, 6, 2], [4, 5, 6, 3, 2]]
    assert window_indices(4, 5, "replicate") == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3],
                                                 [1, 2, 3, 3, 3]]
    # shorter than the window: reflection_circle would leave the clip, replicate takes over
    assert window_indices(3, 5) == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 2], [0, 1, 2, 2, 2]]
    assert window_indices(1, 5) == [[0, 0, 0, 0, 0]]


def test_iconvsr_refill_windows_are_upstream_padding():
    # upstream pads the clip with frames [4, 3] before and [-4, -5] after, then takes lrs[i:i + 5] for keyframe i
    assert refill_windows(7) == [[4, 3, 0, 1, 2], [3, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5],
                                 [2, 3, 4, 5, 6], [3, 4, 5, 6, 3], [4, 5, 6, 3, 2]]
    for t in (5, 6, 11, 12):
        padded = [4, 3, *range(t), t - 4, t - 5]
        assert refill_windows(t) == [padded[i:i + 5] for i in range(t)]
    # padding 3 (Vimeo-90K): [6, 5, 4] before and [-5, -6, -7] after
    t = 9
    padded = [6, 5, 4, *range(t), t - 5, t - 6, t - 7]
    assert refill_windows(t, 3) == [padded[i:i + 7] for i in range(t)]
    # first and last windows are reflection_circle's, the ones beside them are not
    assert refill_windows(12)[0] == window_indices(12, 5)[0] and refill_windows(12)[-1] == window_indices(12, 5)[-1]
    assert refill_windows(12)[1] != window_indices(12, 5)[1]
    assert refill_windows(3) == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 2], [0, 1, 2, 2, 2]]


# ------------------------------------------------------------------------------------------------ building blocks

def test_dcn_pack_splits_offsets_and_mask_like_upstream():
    # conv_offset's output is [o1, o2, mask]; offset = cat(o1, o2) holds (dy, dx) per group and tap. A constant
    # dy = 1, dx = 0 with a saturated mask samples every tap one row lower: a plain conv of the zero-padded frame
    # shifted up by one row.
    torch.manual_seed(0)
    pack = ModulatedDCNPack(4, 6, 3, padding=1, deform_groups=2).double()
    taps = 9
    with torch.no_grad():
        pack.bias.normal_()
        bias = torch.zeros(3 * 2 * taps, dtype=torch.float64)
        bias[0:2 * 2 * taps:2] = 1.0            # dy of every (group, tap)
        bias[2 * 2 * taps:] = 50.0              # mask logits: sigmoid = 1
        pack.conv_offset.bias.copy_(bias)
    x = torch.randn(1, 4, 7, 9, dtype=torch.float64)
    out = pack(x, torch.randn(1, 4, 7, 9, dtype=torch.float64))
    shifted = F.pad(F.pad(x, (1, 1, 1, 1))[:, :, 1:], (0, 0, 0, 1))
    assert _close(out, F.conv2d(shifted, pack.weight, pack.bias), 1e-9)
    # at initialisation conv_offset is zero: no offset, mask 0.5
    fresh = ModulatedDCNPack(4, 6, 3, padding=1, deform_groups=2).double()
    with torch.no_grad():
        fresh.bias.normal_()
    ref = 0.5 * F.conv2d(x, fresh.weight, None, padding=1) + fresh.bias.view(1, -1, 1, 1)
    assert _close(fresh(x, x), ref, 1e-9)


def _upstream_pcd(pcd, nbr: list[torch.Tensor], ref: list[torch.Tensor]) -> torch.Tensor:
    """mmediting's ``PCDAlignment.forward``."""
    up_offset = up_feat = None
    for i in range(3, 0, -1):
        level = f"l{i}"
        offset = pcd.offset_conv1[level](torch.cat([nbr[i - 1], ref[i - 1]], dim=1))
        if i == 3:
            offset = pcd.offset_conv2[level](offset)
        else:
            offset = pcd.offset_conv2[level](torch.cat([offset, up_offset], dim=1))
            offset = pcd.offset_conv3[level](offset)
        feat = pcd.dcn_pack[level](nbr[i - 1], offset)
        feat = pcd.lrelu(feat) if i == 3 else pcd.feat_conv[level](torch.cat([feat, up_feat], dim=1))
        if i > 1:
            up_offset = F.interpolate(offset, scale_factor=2, mode="bilinear", align_corners=False) * 2
            up_feat = F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False)
    offset = pcd.cas_offset_conv2(pcd.cas_offset_conv1(torch.cat([feat, ref[0]], dim=1)))
    return pcd.lrelu(pcd.cas_dcnpack(feat, offset))


def _upstream_tsa(tsa, aligned_feat: torch.Tensor) -> torch.Tensor:
    """mmediting's ``TSAFusion.forward``."""
    n, t, c, h, w = aligned_feat.size()
    embedding_ref = tsa.temporal_attn1(aligned_feat[:, tsa.center_frame_idx].clone())
    emb = tsa.temporal_attn2(aligned_feat.view(-1, c, h, w)).view(n, t, -1, h, w)
    corr_l = [torch.sum(emb[:, i] * embedding_ref, 1).unsqueeze(1) for i in range(t)]
    corr_prob = torch.sigmoid(torch.cat(corr_l, dim=1))
    corr_prob = corr_prob.unsqueeze(2).expand(n, t, c, h, w).contiguous().view(n, -1, h, w)
    aligned_feat = aligned_feat.view(n, -1, h, w) * corr_prob
    feat = tsa.feat_fusion(aligned_feat)
    attn = tsa.spatial_attn1(aligned_feat)
    attn = tsa.spatial_attn2(torch.cat([F.max_pool2d(attn, 3, 2, 1), F.avg_pool2d(attn, 3, 2, 1)], dim=1))
    attn_level = tsa.spatial_attn_l1(attn)
    attn_level = tsa.spatial_attn_l2(torch.cat([F.max_pool2d(attn_level, 3, 2, 1),
                                                F.avg_pool2d(attn_level, 3, 2, 1)], dim=1))
    attn_level = F.interpolate(tsa.spatial_attn_l3(attn_level), scale_factor=2, mode="bilinear", align_corners=False)
    attn = tsa.spatial_attn4(tsa.spatial_attn3(attn) + attn_level)
    attn = tsa.spatial_attn5(F.interpolate(attn, scale_factor=2, mode="bilinear", align_corners=False))
    attn_add = tsa.spatial_attn_add2(tsa.spatial_attn_add1(attn))
    return feat * torch.sigmoid(attn) * 2 + attn_add


def test_pcd_and_tsa_match_upstream_statements():
    torch.manual_seed(0)
    model = EDVRNet(8, num_blocks_extraction=1, num_blocks_reconstruction=1).eval()
    _randomise(model, seed=3, scale=0.1)
    nbr = [torch.randn(2, 8, 16 // 2 ** k, 12 // 2 ** k) for k in range(3)]
    ref = [torch.randn(2, 8, 16 // 2 ** k, 12 // 2 ** k) for k in range(3)]
    aligned = torch.randn(2, 5, 8, 16, 12)
    with torch.no_grad():
        assert _close(model.pcd_alignment(nbr, ref), _upstream_pcd(model.pcd_alignment, nbr, ref))
        assert _close(model.fusion(aligned), _upstream_tsa(model.fusion, aligned))


# ------------------------------------------------------------------------------------------------ forward passes

FORWARD_CASES = [  # entry, frames, input (H, W), expected output (H, W)
    ("basicvsr_x4", 3, (64, 66), (256, 264)),
    ("basicvsr", 3, (256, 258), (256, 258)),
    ("iconvsr_x4", 3, (65, 64), (260, 256)),
    ("iconvsr", 3, (256, 256), (256, 256)),
    ("edvr_m_x4", 4, (30, 34), (120, 136)),
    ("edvr_m", 4, (62, 64), (62, 64)),
    ("edvr_l_x4", 3, (32, 32), (128, 128)),
    ("edvr_l", 3, (64, 66), (64, 66)),
]


@pytest.mark.parametrize("name,t,size,out_size", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_shapes_and_finiteness(registry, name, t, size, out_size):
    torch.manual_seed(0)
    model = registry[name].build(**TINY[name.removesuffix("_x4")]).eval()
    with torch.no_grad():
        out = model(torch.rand(1, t, 3, *size))
    assert out.shape == (1, t, 3, *out_size) and bool(torch.isfinite(out).all())
    assert model.scale == registry[name].spec.scale


@pytest.mark.parametrize("name", [c[0] for c in FORWARD_CASES])
def test_residual_base_is_the_frame(registry, name):
    # with a zero last conv the network adds nothing: QE forms return the input, x4 forms its bilinear x4 upsampling
    model = registry[name].build(**TINY[name.removesuffix("_x4")]).eval()
    if hasattr(model, "spynet"):
        model.spynet = CheapFlow()
        model.min_input_size = 16  # the floor protects SPyNet's coarsest level; the stand-in flow has none
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
        x = torch.rand(1, 3, 3, 20, 24)
        out = model(x)
    if model.scale == 1:
        assert torch.equal(out, x)
    else:
        up = F.interpolate(x[0], scale_factor=4, mode="bilinear", align_corners=False)
        assert _close(out[0], up, 1e-6)


def test_input_checks():
    with pytest.raises(ValueError, match="at least 64x64"):
        BasicVSRNet(8, 1)(torch.rand(1, 2, 3, 64, 60))
    with pytest.raises(ValueError, match="at least 256x256"):
        IconVSR(8, 1, is_low_res_input=False)(torch.rand(1, 2, 3, 256, 252))
    with pytest.raises(ValueError, match="at least 2 frames"):
        BasicVSRNet(8, 1)(torch.rand(1, 1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(N, T, 3, H, W\)"):
        EDVRNet(8, num_blocks_reconstruction=1)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="windows of 5 frames"):
        EDVRNet(8, num_blocks_reconstruction=1).forward_window(torch.rand(1, 6, 3, 32, 32))


# ------------------------------------------------------------------------------------------------ upstream references

def _upstream_edvr_window(model: EDVRNet, x: torch.Tensor) -> torch.Tensor:
    """mmediting's ``EDVRNet.forward`` on one window (x4 form, sides divisible by 4)."""
    n, t, c, h, w = x.size()
    x_center = x[:, model.center_frame_idx].contiguous()
    l1 = model.feature_extraction(model.lrelu(model.conv_first(x.view(-1, c, h, w))))
    l2 = model.feat_l2_conv2(model.feat_l2_conv1(l1))
    l3 = model.feat_l3_conv2(model.feat_l3_conv1(l2))
    l1, l2, l3 = l1.view(n, t, -1, h, w), l2.view(n, t, -1, h // 2, w // 2), l3.view(n, t, -1, h // 4, w // 4)
    ci = model.center_frame_idx
    ref = [l1[:, ci].clone(), l2[:, ci].clone(), l3[:, ci].clone()]
    aligned = torch.stack([model.pcd_alignment([l1[:, i].clone(), l2[:, i].clone(), l3[:, i].clone()], ref)
                           for i in range(t)], dim=1)
    feat = model.fusion(aligned) if model.with_tsa else model.fusion(aligned.view(n, -1, h, w))
    out = model.reconstruction(feat)
    out = model.lrelu(model.upsample1(out))
    out = model.lrelu(model.upsample2(out))
    out = model.conv_last(model.lrelu(model.conv_hr(out)))
    return out + F.interpolate(x_center, scale_factor=4, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("with_tsa", [True, False], ids=["tsa", "no_tsa"])
def test_edvr_clip_is_upstream_window_forward_per_frame(with_tsa):
    torch.manual_seed(0)
    model = EDVRNet(8, num_blocks_extraction=1, num_blocks_reconstruction=1, with_tsa=with_tsa).eval()
    _randomise(model, seed=1)
    x = torch.rand(1, 6, 3, 16, 20)
    windows = [[4, 3, 0, 1, 2], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 1], [3, 4, 5, 2, 1]]
    with torch.no_grad():
        out = model(x)
        ref = torch.stack([_upstream_edvr_window(model, x[:, w]) for w in windows], dim=1)
        one = model.forward_window(x[:, windows[4]])
    assert _close(out, ref) and _close(one, ref[:, 4])


def _upstream_bidirectional(model, lrs: torch.Tensor) -> torch.Tensor:
    """mmediting's ``BasicVSRNet.forward`` / ``IconVSR.forward`` (x4 form, sides divisible by 4, T >= 5 for IconVSR),
    written in upstream's indexing."""
    icon = isinstance(model, IconVSR)
    n, t, c, h, w = lrs.size()
    lrs_1, lrs_2 = lrs[:, :-1].reshape(-1, c, h, w), lrs[:, 1:].reshape(-1, c, h, w)
    flows_backward = model.spynet(lrs_1, lrs_2).view(n, t - 1, 2, h, w)
    flows_forward = model.spynet(lrs_2, lrs_1).view(n, t - 1, 2, h, w)
    if icon:
        keyframe_idx = list(range(0, t, model.keyframe_stride))
        if keyframe_idx[-1] != t - 1:
            keyframe_idx.append(t - 1)
        padded = torch.cat([lrs[:, [4, 3]], lrs, lrs[:, [-4, -5]]], dim=1)
        feats_refill = {i: model.edvr(padded[:, i:i + 5].contiguous()) for i in keyframe_idx}

    outputs = []
    feat_prop = lrs.new_zeros(n, model.mid_channels, h, w)
    for i in range(t - 1, -1, -1):
        if i < t - 1:
            feat_prop = flow_warp(feat_prop, flows_backward[:, i].permute(0, 2, 3, 1))
        if icon and i in keyframe_idx:
            feat_prop = model.backward_fusion(torch.cat([feat_prop, feats_refill[i]], dim=1))
        feat_prop = model.backward_resblocks(torch.cat([lrs[:, i], feat_prop], dim=1))
        outputs.append(feat_prop)
    outputs = outputs[::-1]

    feat_prop = torch.zeros_like(feat_prop)
    for i in range(0, t):
        lr_curr = lrs[:, i]
        if i > 0:
            feat_prop = flow_warp(feat_prop, flows_forward[:, i - 1].permute(0, 2, 3, 1))
        if icon:
            if i in keyframe_idx:
                feat_prop = model.forward_fusion(torch.cat([feat_prop, feats_refill[i]], dim=1))
            feat_prop = model.forward_resblocks(torch.cat([lr_curr, outputs[i], feat_prop], dim=1))
            out = feat_prop
        else:
            feat_prop = model.forward_resblocks(torch.cat([lr_curr, feat_prop], dim=1))
            out = model.lrelu(model.fusion(torch.cat([outputs[i], feat_prop], dim=1)))
        out = model.lrelu(model.upsample1(out))
        out = model.lrelu(model.upsample2(out))
        out = model.conv_last(model.lrelu(model.conv_hr(out)))
        outputs[i] = out + F.interpolate(lr_curr, scale_factor=4, mode="bilinear", align_corners=False)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("cls,t", [(BasicVSRNet, 4), (IconVSR, 7)], ids=["basicvsr", "iconvsr"])
def test_propagation_matches_upstream_indexed_reference(cls, t):
    torch.manual_seed(0)
    model = cls(8, 1).eval()
    _randomise(model, seed=2)
    model.spynet = CheapFlow()
    model.min_input_size = 16  # see test_residual_base_is_the_frame
    x = torch.rand(1, t, 3, 16, 20)
    with torch.no_grad():
        out, ref = model(x), _upstream_bidirectional(model, x)
    assert out.shape == (1, t, 3, 64, 80) and _close(out, ref)


def test_clip_inference_runs_the_sliding_window_entry(registry):
    # EDVR plugs into the recurrent models' clip inference: uint8 frames in, uint8 frames out, duplicates restored
    torch.manual_seed(0)
    model = registry["edvr_m"].build(**TINY["edvr_m"]).eval()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(4)]
    frames.insert(2, frames[1].copy())
    out, stats = enhance_clip(model, frames, min_size=16, pad_to_multiple=1)
    assert len(out) == 5 and all(f.shape == (20, 28, 3) and f.dtype == np.uint8 for f in out)
    assert np.array_equal(out[1], out[2]) and stats["duplicates"] == 1 and stats["scale"] == 1


def test_pad_frames_is_a_bottom_right_reflection():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(1, 2, 3, 5, 7)
    padded = pad_frames(x, 4)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 0), (0, 3), (0, 1)), mode="reflect")
    assert np.array_equal(padded.numpy(), ref)
    assert torch.equal(pad_frames(x[..., :4, :4], 4), x[..., :4, :4])


@pytest.mark.slow
def test_building_blocks_do_not_import_the_video_models():
    import subprocess
    import sys

    code = ("import sys, ntirekit.nn.recurrent, ntirekit.nn.spynet, ntirekit.nn.deform, ntirekit.nn.flow; "
            "print(sorted(m for m in sys.modules if m.startswith('ntirekit.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
