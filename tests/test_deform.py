"""Modulated deformable convolution: the pure-torch path against a direct loop over output pixels and kernel taps,
torchvision's op where it loads, and BasicVSR++'s second-order deformable alignment."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ntirekit.nn import deform
from ntirekit.nn.deform import (ModulatedDeformConv2d, SecondOrderDeformableAlignment, deform_conv2d_torch,
                                modulated_deform_conv2d, torchvision_available)
from ntirekit.nn.flow import flow_warp


def _bilinear(img: torch.Tensor, y: float, x: float) -> float:
    """The CUDA kernel's sampling: zero when outside (-1, H) x (-1, W), corners outside the image contribute zero."""
    h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    total = 0.0
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * float(img[yy, xx])
    return total


def reference_dcn(x, offset, mask, weight, bias, stride, padding, dilation, deform_groups):
    """Direct loop: out[n, o, i, j] = b[o] + sum_{c, ki, kj} w[o, c, ki, kj] * m * x_c(p + offset)."""
    n, c_in, h, w = x.shape
    c_out, cpg, kh, kw = weight.shape
    groups = c_in // cpg
    ho, wo = offset.shape[-2:]
    out = torch.zeros(n, c_out, ho, wo, dtype=torch.float64)
    for b in range(n):
        for o in range(c_out):
            g = o // (c_out // groups)
            for i in range(ho):
                for j in range(wo):
                    acc = float(bias[o])
                    for cc in range(cpg):
                        c = g * cpg + cc
                        dg = c // (c_in // deform_groups)
                        for ki in range(kh):
                            for kj in range(kw):
                                k = ki * kw + kj
                                dy = float(offset[b, 2 * (dg * kh * kw + k), i, j])
                                dx = float(offset[b, 2 * (dg * kh * kw + k) + 1, i, j])
                                m = float(mask[b, dg * kh * kw + k, i, j])
                                py = i * stride - padding + ki * dilation + dy
                                px = j * stride - padding + kj * dilation + dx
                                acc += float(weight[o, cc, ki, kj]) * m * _bilinear(x[b, c], py, px)
                    out[b, o, i, j] = acc
    return out


CASES = [
    # (N, C_in, C_out, H, W, kh, kw, stride, padding, dilation, groups, deform_groups)
    (2, 4, 6, 5, 7, 3, 3, 1, 1, 1, 2, 2),
    (1, 6, 4, 6, 5, 3, 2, 2, 1, 1, 1, 3),
    (1, 4, 2, 7, 6, 3, 3, 1, 2, 2, 2, 4),
]


def _random_case(case, dtype=torch.float64, seed=0):
    n, c_in, c_out, h, w, kh, kw, s, p, d, groups, dg = case
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * p - d * (kh - 1) - 1) // s + 1
    wo = (w + 2 * p - d * (kw - 1) - 1) // s + 1
    x = torch.randn(n, c_in, h, w, generator=g, dtype=dtype)
    offset = torch.randn(n, 2 * dg * kh * kw, ho, wo, generator=g, dtype=dtype) * 2.5
    # Far out of the image, exact integers, and half-in-half-out positions.
    offset[:, 0] = 9.0
    offset[:, 1] = -8.5
    offset[:, 2::7] = torch.round(offset[:, 2::7])
    mask = torch.rand(n, dg * kh * kw, ho, wo, generator=g, dtype=dtype)
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=g, dtype=dtype)
    bias = torch.randn(c_out, generator=g, dtype=dtype)
    return x, offset, mask, weight, bias, s, p, d, dg


@pytest.mark.parametrize("case", CASES)
def test_pure_torch_matches_direct_loop_float64(case):
    x, offset, mask, weight, bias, s, p, d, dg = _random_case(case)
    ref = reference_dcn(x, offset, mask, weight, bias, s, p, d, dg)
    out = deform_conv2d_torch(x, offset, mask, weight, bias, s, p, d)
    assert out.shape == ref.shape
    bound = 1e-9 * max(1.0, ref.abs().max().item())
    assert (out - ref).abs().max().item() <= bound


def test_pure_torch_float32_and_module():
    case = CASES[0]
    x, offset, mask, weight, bias, s, p, d, dg = _random_case(case, seed=1)
    ref = reference_dcn(x, offset, mask, weight, bias, s, p, d, dg)
    conv = ModulatedDeformConv2d(case[1], case[2], (case[5], case[6]), s, p, d, groups=case[10], deform_groups=dg)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.copy_(bias.float())
    out = conv(x.float(), offset.float(), mask.float())
    assert (out.double() - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_zero_offset_full_mask_is_plain_conv():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 9, 11, generator=g, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(6, generator=g, dtype=torch.float64)
    offset = torch.zeros(2, 2 * 4 * 9, 9, 11, dtype=torch.float64)
    mask = torch.ones(2, 4 * 9, 9, 11, dtype=torch.float64)
    out = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, 4, impl="torch")
    ref = F.conv2d(x, weight, bias, padding=1, groups=2)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)


def test_shape_checks():
    x = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 5, 5), None, torch.zeros(2, 4, 3, 3), None, 1, 1, 1,
                                deform_groups=2, impl="torch")
    with pytest.raises(ValueError):  # offset size does not fit the convolution
        deform_conv2d_torch(x, torch.zeros(1, 18, 4, 4), None, torch.zeros(2, 4, 3, 3), None, 1, 1, 1)


@pytest.mark.slow
def test_torchvision_probe_is_lazy_and_cached():
    code = ("import sys, ntirekit.nn.deform as d; "
            "assert d._TORCHVISION == {} and 'torchvision' not in sys.modules, 'probed at import'")
    subprocess.run([sys.executable, "-c", code], check=True)
    first = torchvision_available("cpu")
    assert torchvision_available("cpu") is first and "cpu" in deform._TORCHVISION
    if not first:
        with pytest.raises(RuntimeError):
            modulated_deform_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 2, 3, 3), None,
                                    torch.zeros(1, 1, 1, 1), impl="torchvision")


@pytest.mark.skipif(not torchvision_available("cpu"), reason="torchvision's compiled deform_conv2d does not load here")
@pytest.mark.parametrize("case", CASES)
def test_torchvision_agrees_with_pure_torch(case):
    x, offset, mask, weight, bias, s, p, d, dg = _random_case(case, dtype=torch.float64, seed=2)
    a = modulated_deform_conv2d(x, offset, mask, weight, bias, s, p, d, dg, impl="torchvision")
    b = modulated_deform_conv2d(x, offset, mask, weight, bias, s, p, d, dg, impl="torch")
    assert (a - b).abs().max().item() <= 1e-9 * max(1.0, b.abs().max().item())


@pytest.mark.gpu
def test_torchvision_agrees_on_cuda():
    if not torchvision_available("cuda"):
        pytest.skip("torchvision's deform_conv2d does not run on CUDA here")
    x, offset, mask, weight, bias, s, p, d, dg = _random_case(CASES[0], dtype=torch.float64, seed=4)
    args = [t.cuda() for t in (x, offset, mask, weight, bias)]
    a = modulated_deform_conv2d(*args, s, p, d, dg, impl="torchvision")
    b = modulated_deform_conv2d(*args, s, p, d, dg, impl="torch")
    assert (a - b).abs().max().item() <= 1e-9 * max(1.0, b.abs().max().item())


def _alignment(c=8, dg=4, seed=0):
    torch.manual_seed(seed)
    align = SecondOrderDeformableAlignment(2 * c, c, 3, padding=1, deform_groups=dg).double()
    with torch.no_grad():
        align.bias.normal_()
    return align


def test_alignment_starts_as_flow_warp_then_conv():
    """Untrained (zero last offset conv): offsets are the flows, mask 0.5; with integer flows the deformable conv is a
    plain conv of the flow-warped neighbours (first half of the deform groups follow flow_1, the second flow_2), away
    from the border (where the conv pads the warped frame with zeros but the deformable conv samples inside it)."""
    c, h, w = 8, 7, 9
    align = _alignment(c)
    g = torch.Generator().manual_seed(1)
    feat1 = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    feat2 = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    cond = torch.randn(1, 3 * c, h, w, generator=g, dtype=torch.float64)
    flow1 = torch.zeros(1, 2, h, w, dtype=torch.float64)
    flow1[:, 0], flow1[:, 1] = 2.0, -1.0            # dx, dy
    flow2 = torch.zeros(1, 2, h, w, dtype=torch.float64)
    flow2[:, 0], flow2[:, 1] = -1.0, 3.0
    out = align(torch.cat([feat1, feat2], 1), cond, flow1, flow2)
    warped = torch.cat([flow_warp(feat1, flow1.permute(0, 2, 3, 1)), flow_warp(feat2, flow2.permute(0, 2, 3, 1))], 1)
    ref = F.conv2d(0.5 * warped, align.weight, align.bias, padding=1)
    assert torch.allclose(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-10, rtol=0)


def test_alignment_residue_bounded_and_mask_sigmoid(monkeypatch):
    c, h, w = 8, 5, 6
    align = _alignment(c, dg=4, seed=2)
    with torch.no_grad():
        align.conv_offset[-1].bias.normal_(0, 50.0)  # huge residues: tanh must bound them to 10
    seen = {}

    def spy(x, offset, mask, *args, **kwargs):
        seen.update(offset=offset, mask=mask)
        return deform_conv2d_torch(x, offset, mask, *args[:5])

    monkeypatch.setattr(deform, "modulated_deform_conv2d", spy)
    g = torch.Generator().manual_seed(5)
    flow1 = torch.randn(1, 2, h, w, generator=g, dtype=torch.float64) * 3
    flow2 = torch.randn(1, 2, h, w, generator=g, dtype=torch.float64) * 3
    cond = torch.randn(1, 3 * c, h, w, generator=g, dtype=torch.float64)
    align(torch.randn(1, 2 * c, h, w, generator=g, dtype=torch.float64), cond, flow1, flow2)
    offset, mask = seen["offset"], seen["mask"]
    taps_pairs = offset.shape[1] // 4
    base1 = flow1.flip(1).repeat(1, taps_pairs, 1, 1)
    base2 = flow2.flip(1).repeat(1, taps_pairs, 1, 1)
    residue = offset - torch.cat([base1, base2], 1)
    assert residue.abs().max() <= 10.0 + 1e-9
    assert residue.abs().max() > 9.0  # the bias really pushed them to the bound
    logits = align.conv_offset(torch.cat([cond, flow1, flow2], 1)).chunk(3, dim=1)[2]
    assert mask.shape[1] == 9 * 4 and torch.equal(mask, torch.sigmoid(logits))


def test_forced_implementation_block():
    x, offset, mask, weight, bias, s, p, d, dg = _random_case(CASES[0], seed=6)
    with deform.implementation("torch"):
        forced = modulated_deform_conv2d(x, offset, mask, weight, bias, s, p, d, dg)
    assert torch.equal(forced, deform_conv2d_torch(x, offset, mask, weight, bias, s, p, d))
    assert deform._FORCED == []
    if not torchvision_available(x.device):
        with deform.implementation("torchvision"), pytest.raises(RuntimeError):
            modulated_deform_conv2d(x, offset, mask, weight, bias, s, p, d, dg)
    with pytest.raises(ValueError):
        with deform.implementation("mmcv"):
            pass
