"""Peak memory: the CPU estimate against hand-computed peaks; the CUDA figure where a GPU is present."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ntirekit.measure import memory as M

F32 = 4


def nbytes(*shape: int) -> int:
    n = F32
    for s in shape:
        n *= s
    return n


def param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_conv_chain_peak_is_the_largest_adjacent_pair() -> None:
    """x -> c1 -> c2 -> c3: while c_k runs its input and output are alive, the one before is freed."""
    chain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1),
                          nn.Conv2d(16, 4, 3, padding=1))
    h, w = 24, 20
    x = torch.rand(1, 3, h, w)
    out = [nbytes(1, 8, h, w), nbytes(1, 16, h, w), nbytes(1, 4, h, w)]
    expected = param_bytes(chain) + nbytes(1, 3, h, w) + max(out[0] + out[1], out[1] + out[2])
    r = M.cpu_peak_bytes(chain, x)
    assert r["state"] == param_bytes(chain)
    assert r["input"] == nbytes(1, 3, h, w)
    assert r["peak"] == expected
    assert r["ops"] == 3


def test_skip_connection_keeps_the_feature_alive() -> None:
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Conv2d(3, 8, 1, bias=False)
            self.body = nn.Conv2d(8, 8, 1, bias=False)
            self.tail = nn.Conv2d(8, 3, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.head(x)            # f alive until the add
            g = self.body(f)
            return self.tail(f + g)     # f, g, f+g alive; then f+g and the output

    m = Skip()
    x = torch.rand(1, 3, 10, 10)
    feat = nbytes(1, 8, 10, 10)
    # at the tail conv f, g (held by the frame) and f+g are alive, plus the output
    expected = param_bytes(m) + nbytes(1, 3, 10, 10) + 3 * feat + nbytes(1, 3, 10, 10)
    assert M.cpu_peak_bytes(m, x)["peak"] == expected


def test_in_place_ops_and_views_add_nothing() -> None:
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            y.relu_()
            return y.view(1, 8, -1)[..., :50]

    m = InPlace()
    x = torch.rand(1, 3, 10, 10)
    assert M.cpu_peak_bytes(m, x)["peak"] == param_bytes(m) + nbytes(1, 3, 10, 10) + nbytes(1, 8, 10, 10)


def test_estimate_over_several_inputs_is_the_largest() -> None:
    conv = nn.Conv2d(3, 4, 1, bias=False)
    small, large = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)
    expected = (param_bytes(conv) + nbytes(1, 3, 8, 8) + nbytes(1, 4, 8, 8)) / 2**20
    assert M.cpu_estimate_mib(conv, [small, large]) == pytest.approx(expected)


def test_measure_memory_on_cpu_is_labelled_an_estimate() -> None:
    out = M.measure_memory(nn.Conv2d(3, 3, 1), [torch.rand(1, 3, 8, 8)], "cpu")
    assert out["memory_kind"] == "cpu_estimate" and out["nvml_memory_mib"] is None and out["max_memory_mib"] > 0


def test_tracker_ignores_tensors_created_before_it() -> None:
    tracker = M.StoragePeakTracker()
    a = torch.ones(1000)
    with tracker:
        b = a * 2
        del b
        c = a + 1
    assert tracker.peak == 4000 and tracker.current == 4000
    del c


@pytest.mark.gpu
def test_cuda_peak_includes_weights_input_and_activations() -> None:
    device = torch.device("cuda")
    chain = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)).to(device).eval()
    x = torch.rand(1, 3, 128, 128)
    out = M.measure_memory(chain, [x], device)
    assert out["memory_kind"] == "cuda_max_memory_allocated"
    floor = (param_bytes(chain) + nbytes(1, 3, 128, 128) + 2 * nbytes(1, 64, 128, 128)) / 2**20
    assert out["max_memory_mib"] >= floor * 0.99
    assert out["nvml_memory_mib"] is None or out["nvml_memory_mib"] >= out["max_memory_mib"]
