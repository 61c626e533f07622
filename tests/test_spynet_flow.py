"""Flow warping, flow chaining and SPyNet (structure, upstream key layout, size handling)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ntirekit.nn.flow import chain_flows, flow_warp
from ntirekit.nn.spynet import SPyNet


def _const_flow(n, h, w, dx, dy, dtype=torch.float64):
    flow = torch.zeros(n, 2, h, w, dtype=dtype)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_zero_flow_is_identity():
    x = torch.randn(2, 3, 7, 10, dtype=torch.float64)
    out = flow_warp(x, torch.zeros(2, 7, 10, 2, dtype=torch.float64))
    assert torch.allclose(out, x, atol=1e-12, rtol=0)
    x32 = x.float()
    assert torch.allclose(flow_warp(x32, torch.zeros(2, 7, 10, 2)), x32, atol=1e-6, rtol=0)


def test_integer_shift_is_roll_with_zeros_outside():
    h, w, dx, dy = 9, 11, 3, -2
    x = torch.randn(1, 4, h, w, dtype=torch.float64)
    out = flow_warp(x, _const_flow(1, h, w, dx, dy).permute(0, 2, 3, 1))
    # out[v, u] = x[v + dy, u + dx]: a roll by (-dy, -dx), with the wrapped-around band zeroed
    ref = torch.roll(x, shifts=(-dy, -dx), dims=(-2, -1))
    ref[..., :, w - dx:] = 0    # u + dx >= w
    ref[..., : -dy, :] = 0      # v + dy < 0
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)


def test_fractional_flow_is_bilinear():
    x = torch.arange(20, dtype=torch.float64).view(1, 1, 4, 5)
    out = flow_warp(x, _const_flow(1, 4, 5, 0.25, 0.5).permute(0, 2, 3, 1))
    # interior pixel (1, 1) samples (1.5, 1.25): mean of rows 1-2 at column 1.25
    expected = 0.5 * ((x[0, 0, 1, 1] * 0.75 + x[0, 0, 1, 2] * 0.25) + (x[0, 0, 2, 1] * 0.75 + x[0, 0, 2, 2] * 0.25))
    assert abs(out[0, 0, 1, 1].item() - expected.item()) < 1e-12


def test_chain_of_two_is_basicvsrpp_second_order_flow():
    """BasicVSR++: flow_n2 = flow_n1 + warp(flow of the previous step, flow_n1), written here with grid_sample."""
    g = torch.Generator().manual_seed(0)
    h, w = 8, 12
    r1 = torch.randn(2, 2, h, w, generator=g, dtype=torch.float64) * 2
    r2 = torch.randn(2, 2, h, w, generator=g, dtype=torch.float64) * 2
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    px, py = xs + r2[:, 0], ys + r2[:, 1]
    grid = torch.stack((2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1), dim=-1)
    expected = r2 + F.grid_sample(r1, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    assert torch.allclose(chain_flows([r1, r2]), expected, atol=1e-12, rtol=0)
    assert torch.equal(chain_flows([r1]), r1)


def test_chain_of_integer_flows_adds_up_inside():
    h, w = 12, 14
    flows = [_const_flow(1, h, w, 1, 0), _const_flow(1, h, w, 0, 2), _const_flow(1, h, w, -1, 1)]
    f = chain_flows(flows)
    # away from the border (where warping reads zeros) the composition of translations is their sum
    assert torch.allclose(f[..., 4:-4, 4:-4], _const_flow(1, h, w, 0, 3)[..., 4:-4, 4:-4], atol=1e-12, rtol=0)


def test_spynet_keys_follow_mmediting():
    sd = SPyNet().state_dict()
    widths = (8, 32, 64, 32, 16, 2)
    expected = {"mean": (1, 3, 1, 1), "std": (1, 3, 1, 1)}
    for level in range(6):
        for m in range(5):
            key = f"basic_module.{level}.basic_module.{m}.conv"
            expected[f"{key}.weight"] = (widths[m + 1], widths[m], 7, 7)
            expected[f"{key}.bias"] = (widths[m + 1],)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert torch.allclose(sd["mean"].flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(sd["std"].flatten(), torch.tensor([0.229, 0.224, 0.225]))


@pytest.mark.slow
def test_spynet_output_size_and_rescale(monkeypatch):
    net = SPyNet().eval()
    ref = torch.rand(2, 3, 50, 70)
    with torch.no_grad():
        assert net(ref, ref.flip(-1)).shape == (2, 2, 50, 70)
    seen = {}

    def const_flow(r, s):  # pretend the network found a flow of one pixel per axis at the padded size
        seen["size"] = tuple(r.shape[-2:])
        return torch.ones(r.shape[0], 2, *r.shape[-2:])

    monkeypatch.setattr(net, "compute_flow", const_flow)
    flow = net(ref, ref)
    assert seen["size"] == (64, 96)                          # sides rounded up to multiples of 32
    assert torch.allclose(flow[:, 0], torch.full((2, 50, 70), 70 / 96))
    assert torch.allclose(flow[:, 1], torch.full((2, 50, 70), 50 / 64))


def test_spynet_zero_modules_give_zero_flow():
    net = SPyNet().eval()
    for p in net.basic_module.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        assert torch.count_nonzero(net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))) == 0
