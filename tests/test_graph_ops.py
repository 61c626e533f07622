"""Operators added to the graph allowlist for real NTIRE teams, each checked on a network that calls it."""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.eval.graph_side import GraphModel
from ntirekit.graph.export import export_graph
from ntirekit.graph.read import read_graph
from ntirekit.measure.counts import count
from ntirekit.measure.graph_counts import count_graph


def test_weight_norm_exports_and_counts_its_two_tensors() -> None:
    """``nn.utils.weight_norm`` (NTIRE 2022 team 42, RLCSR) computes a conv's weight as ``g * v / ||v||`` with
    ``aten._weight_norm``: the graph reproduces the module bit for bit and counts ``g`` and ``v`` as parameters."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.utils.weight_norm(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU(),
                          nn.Conv2d(8, 3, 1)).eval()
    graph = read_graph(export_graph(model, [(1, 3, 16, 16), (1, 3, 20, 24)]).data)
    targets = {n.meta.get("ntk_target") for p in graph.programs for n in p.module.graph.nodes}
    assert "aten._weight_norm.default" in targets
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(GraphModel(graph)(x), model(x))
    expected = 8 * 3 * 3 * 3 + 8 + 8 + 8 * 3 + 3      # v, g (one per output channel), bias; the 1x1 conv
    assert sum(p.numel() for p in model.parameters()) == expected
    assert count_graph(graph, (1, 3, 16, 16), fvcore=False).params == expected


class _UnshuffleByConv(nn.Module):
    """NTIRE 2022 team 35's pixel unshuffle: a 0/1 kernel filled by indexed assignment in ``forward``, then a
    functional ``F.conv2d`` (exported as ``aten.fill.Tensor`` into slices of a fresh tensor; a slice with a step and
    no end is exported with the end ``2**63 - 1``, which the reader must accept)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, k = x.shape[1], 2
        kernel = torch.zeros(size=[k * k * c, 1, k, k], device=x.device)
        for y in range(k):
            for z in range(k):
                kernel[z + y * k::k * k, 0, y, z] = 1
        return self.conv(torch.nn.functional.conv2d(x, kernel, stride=k, groups=c))


def test_fill_tensor_exports_and_the_functional_conv_is_counted_as_missed() -> None:
    torch.manual_seed(0)
    model = _UnshuffleByConv().eval()
    graph = read_graph(export_graph(model, [(1, 3, 16, 16), (1, 3, 24, 32)]).data)
    targets = {n.meta.get("ntk_target") for p in graph.programs for n in p.module.graph.nodes}
    assert "aten.fill.Tensor" in targets
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(GraphModel(graph)(x), model(x))
    counts = count_graph(graph, (1, 3, 16, 16))
    eager = count(model, (1, 3, 16, 16), cross_check=False)
    assert not any("fvcore could not" in w for w in counts.warnings), counts.warnings
    assert (counts.macs_fvcore, counts.activations_fvcore) == (eager.macs_fvcore, eager.activations_fvcore)
    assert counts.macs_fvcore == 12 * 1 * 2 * 2 * 8 * 8 + 3 * 12 * 3 * 3 * 8 * 8   # fvcore: weight numel x H_out x W_out
    # the 2022 rule k_h*k_w*C_in*(C_out/groups)*H_out*W_out: 2*2*3*(12/3)*8*8 for the functional conv (missed),
    # 3*3*12*3*8*8 for the module conv (official)
    assert (counts.convs, counts.convs_missed) == (1, 1)
    assert counts.macs_ntire2022_missed == 2 * 2 * 3 * 4 * 8 * 8
    assert counts.macs_ntire2022 == 3 * 3 * 12 * 3 * 8 * 8
    assert counts.params == sum(p.numel() for p in model.parameters())

