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
