"""A graph read on one device and moved to another runs there: its device literals follow its tensors.

A network that makes a tensor on its input's device (``torch.zeros(..., device=x.device)``; ``torch.export`` also
writes the device into ``_assert_tensor_metadata`` for a ``.to(dtype)``) exports a device literal. The organizer
reads every graph on the CPU and then moves it to the measuring device (``GraphRunner``, ``memory_of``); the meta
device stands in here for CUDA (a CPU tensor mixed into a meta computation fails just as one mixed into a CUDA one).
"""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.eval.graph_side import GraphModel
from ntirekit.graph.export import export_graph
from ntirekit.graph.read import read_graph


class _MakesTensors(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = torch.full((1, 3, 1, 1), 0.5, device=x.device)
        return self.conv(x).to(torch.float32) + offset


def _graph_model() -> tuple[nn.Module, GraphModel]:
    torch.manual_seed(0)
    model = _MakesTensors().eval()
    data = export_graph(model, [(1, 3, 16, 16), (1, 3, 24, 32)]).data
    return model, GraphModel(read_graph(data, device="cpu"))


def test_device_literals_follow_the_graph_to_another_device() -> None:
    model, graph_model = _graph_model()
    literals = [n for p in graph_model.graph.programs for n in p.module.graph.nodes
                if any(isinstance(v, torch.device) for v in (*n.args, *n.kwargs.values()))]
    assert literals, "the network must export a device literal for this test to mean anything"
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(graph_model(x), model(x))
    graph_model.to("meta")
    out = graph_model(torch.empty(1, 3, 24, 32, device="meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (1, 3, 24, 32)
