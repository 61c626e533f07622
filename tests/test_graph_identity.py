"""A graph's identity and structure (ntirekit.graph.identity), and the time bound of the dynamic export."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from ntirekit.graph import export as export_module
from ntirekit.graph.export import export_graph
from ntirekit.graph.identity import graph_id, structure_id
from ntirekit.graph.read import read_graph


class Patches(nn.Module):
    """An honest network whose code depends on the input size: it runs its one conv on as many 8-px-wide column
    strips as the input has (as window and patch networks do)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        strips = [self.conv(x[..., i:i + 8]) for i in range(0, x.shape[-1], 8)]
        return torch.cat(strips, dim=-1)


class Switch(nn.Module):
    """A cheat: the real conv at the counting size, a cheaper one at the other sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.real = nn.Conv2d(3, 3, 3, padding=1)
        self.cheap = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.real(x) if x.shape[-1] == 32 else self.cheap(x)


def _programs(model: nn.Module, widths: tuple[int, ...]) -> list:
    torch.manual_seed(0)
    graph = read_graph(export_graph(model.eval(), [(1, 3, 16, w) for w in widths]).data)
    return [graph.program_for((1, 3, 16, w)) for w in widths]


def test_one_structure_for_an_honest_size_dependent_network_two_for_a_switch() -> None:
    honest = _programs(Patches(), (16, 32))
    assert len({id(p) for p in honest}) == 2                          # two static programs (strip counts differ)
    xs = [torch.rand(1, 3, 16, w) for w in (16, 32)]
    assert structure_id(honest[0], xs[0]) == structure_id(honest[1], xs[1])
    assert graph_id(honest[0], xs[0]) != graph_id(honest[1], xs[1])  # what runs does differ
    cheat = _programs(Switch(), (16, 32))
    assert structure_id(cheat[0], xs[0]) != structure_id(cheat[1], xs[1])


def test_other_weights_are_another_identity() -> None:
    x = torch.rand(1, 3, 16, 16)
    torch.manual_seed(0)
    a = read_graph(export_graph(Patches().eval(), [(1, 3, 16, 16)]).data).programs[0]
    torch.manual_seed(1)
    b = read_graph(export_graph(Patches().eval(), [(1, 3, 16, 16)]).data).programs[0]
    assert graph_id(a, x) != graph_id(b, x) and structure_id(a, x) != structure_id(b, x)
    assert graph_id(a, x) == graph_id(a, torch.rand(1, 3, 16, 16))   # the input's values do not matter


def test_the_dynamic_export_is_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    with pytest.raises(export_module._OutOfTime):
        with export_module._time_bound(0.2):
            while time.monotonic() - started < 30:
                sum(range(1000))                 # Python work, as torch's shape solver does
    assert time.monotonic() - started < 5

    def endless(*_args, **_kwargs):              # a dynamic export that never ends falls back to static programs
        while True:
            sum(range(1000))

    real = torch.export.export
    monkeypatch.setattr(export_module, "DYNAMIC_EXPORT_S", 0.3)
    monkeypatch.setattr(torch.export, "export",
                        lambda *a, **k: endless() if k.get("dynamic_shapes") else real(*a, **k))
    exported = export_graph(Patches().eval(), [(1, 3, 16, 16), (1, 3, 16, 24)])
    assert exported.programs == 2 and not exported.dynamic
