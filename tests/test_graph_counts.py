"""Parameters counted on a graph: what an operator reads as a weight counts, whatever the exporter labelled it; a
number written into a tensor (a 0-d fill value) does not."""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.graph.export import export_graph
from ntirekit.graph.read import read_graph
from ntirekit.measure.graph_counts import count_graph


class _Hidden(nn.Module):
    """A conv weight kept as a buffer (``model.parameters()`` does not see it), plus a 1-element parameter; the
    buffer is scaled by a fill-built mask, whose 0-d fill value is no weight."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(4, 3, 3, 3))
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(4, 1, 1, 1, device=x.device)
        mask[::2] = 1
        return torch.nn.functional.conv2d(x, self.weight * (mask + self.scale), padding=1)


def test_a_weight_kept_as_a_buffer_counts_and_a_fill_value_does_not() -> None:
    torch.manual_seed(0)
    model = _Hidden().eval()
    assert sum(p.numel() for p in model.parameters()) == 1
    graph = read_graph(export_graph(model, [(1, 3, 8, 8), (1, 3, 12, 16)]).data)
    labels = {n.meta.get("ntk_label") for p in graph.programs for n in p.module.graph.nodes if n.op == "get_attr"}
    assert "buffer" in labels
    assert count_graph(graph, (1, 3, 8, 8), fvcore=False).params == 4 * 3 * 3 * 3 + 1


class _PointwiseAsLinear(nn.Module):
    """A 1x1 convolution 3 -> 8 written as an ``nn.Linear`` over channels-last features (as NTIRE 2022's BSRN
    writes its pointwise convolutions), beside its ``nn.Conv2d`` twin."""

    def __init__(self, as_linear: bool) -> None:
        super().__init__()
        self.as_linear = as_linear
        self.pw = nn.Linear(3, 8) if as_linear else nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.as_linear:
            return self.pw(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.pw(x)


def test_a_linear_over_channels_last_features_is_counted_officially_and_what_it_misses_beside() -> None:
    """The official 2022 formula for a Linear, shape[0]*shape[1]*out.shape[1], on the (1, 12, 16, 3) input (output
    (1, 12, 16, 8)) gives 1*12*12 = 144 MACs; the true MACs are 12*16*3*8 = 4608, those of the Conv2d twin: the difference goes to
    macs_ntire2022_missed, so official + missed ranks the two alike."""
    torch.manual_seed(0)
    shape = (1, 3, 12, 16)
    figures = {}
    for as_linear in (True, False):
        graph = read_graph(export_graph(_PointwiseAsLinear(as_linear).eval(), [shape]).data)
        figures[as_linear] = count_graph(graph, shape, fvcore=False)
    linear, conv = figures[True], figures[False]
    assert conv.macs_ntire2022 == 12 * 16 * 3 * 8 and conv.macs_ntire2022_missed == 0
    assert linear.macs_ntire2022 == 1 * 12 * 12
    assert linear.macs_ntire2022 + linear.macs_ntire2022_missed == conv.macs_ntire2022
    assert linear.params == conv.params == 3 * 8 + 8
    assert any("macs_ntire2022_missed" in w and "pw (Linear)" in w for w in linear.warnings), linear.warnings
