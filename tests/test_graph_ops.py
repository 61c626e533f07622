"""Operators added to the graph allowlist for real NTIRE teams, each checked on a network that calls it."""

from __future__ import annotations

import torch
from torch import nn

from ntirekit.eval.graph_side import GraphModel
from ntirekit.graph.export import export_graph
from ntirekit.graph.read import read_graph
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
