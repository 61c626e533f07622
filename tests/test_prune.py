"""Structured channel pruning: traced coupled groups, dead channels pruned without changing the output, exact widths."""

from __future__ import annotations

import copy
import random
import re

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.core.registry import discover
from ntirekit.measure.counts import macs_ntire2022, params
from ntirekit.models.rlfn import RLFN
from ntirekit.train.prune import (PruneError, apply_widths, channel_importance, named_groups, prune_model,
                                  select_channels, trace_channels, width_spec_of)
from ntirekit.train.prune.prune import _module_tensor

BOUNDS = {torch.float64: 1e-9, torch.float32: 1e-5}


def assert_close(ref: torch.Tensor, out: torch.Tensor, dtype: torch.dtype) -> None:
    allowed = BOUNDS[dtype] * max(1.0, ref.abs().max().item())
    worst = (ref - out).abs().max().item()
    assert worst <= allowed, f"max |Δ| = {worst:.3g} > {allowed:.3g}"


def kill(model: nn.Module, group, positions) -> None:
    """Make channels dead: zero every filter and bias that produces them, across the coupled group."""
    with torch.no_grad():
        for c in positions:
            for path, kind, k in group.channels[c].roles:
                if kind == "out":
                    conv = _module_tensor(model, path)
                    conv.weight[k] = 0
                    if conv.bias is not None:
                        conv.bias[k] = 0


def meta(model: nn.Module) -> nn.Module:
    """A copy on the meta device: counting needs shapes only."""
    return copy.deepcopy(model).to("meta")


def random_biases(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.fixture(scope="module")
def registry():
    return discover()


def test_rlfn_groups() -> None:
    model = RLFN(feature_channels=12, mid_channels=10, num_blocks=2, esa_channels=4)
    graph = trace_channels(model)
    names = [g.name for g in graph.groups]
    assert names[:4] == ["conv_1", "block_1.c1_r", "block_1.c2_r", "block_1.c5"]
    trunk = graph.group("conv_1")
    assert trunk.width == 12
    assert trunk.producer_modules() == ["block_1.c3_r", "conv_1", "conv_2"]      # residual adds couple them
    assert trunk.consumer_modules() == ["block_1.c1_r", "block_1.c5", "upsampler.0"]
    gated = graph.group("block_1.c5")                                            # x * sigmoid(conv4(...)) couples
    assert gated.producer_modules() == ["block_1.c5", "block_1.esa.conv4", "block_2.c3_r"]
    assert graph.group("block_1.esa.conv3").producer_modules() == ["block_1.esa.conv3", "block_1.esa.conv_f"]
    # The conv feeding the pixel shuffle keeps its 3*scale^2 outputs: it produces no prunable group.
    assert not any("upsampler.0" in g.producer_modules() for g in graph.groups)
    groups = named_groups(graph, width_spec_of(model))
    assert [g.name for g in groups["trunk"]] == ["conv_1", "block_1.c5", "block_2.c5"]
    assert len(groups["mid"]) == 4 and len(groups["esa"]) == 6


def test_channel_splits_are_kept(registry) -> None:
    """IMDN splits its features with constant sizes: the split inputs are not prunable, the rest is."""
    model = registry["imdn"].build()
    graph = trace_channels(model)
    producers = {p for g in graph.groups for p in g.producer_modules()}
    assert "IMDB1.c1" not in producers                   # its output is split (16, 48)
    assert "fea_conv" in producers and "IMDB1.c4" in producers


def select_dead(graph, rng: random.Random, fraction: int = 4) -> dict:
    return {g.name: sorted(rng.sample(range(g.width), max(1, g.width // fraction))) for g in graph.groups
            if g.width > 1}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name, kwargs", [
    ("rlfn", {"feature_channels": 16, "mid_channels": 12, "num_blocks": 2, "esa_channels": 8}),
    ("rfdn", {}),
    ("imdn", {}),
    ("efdn", {}),
])
def test_dead_channels_prune_without_changing_the_output(registry, name: str, kwargs: dict,
                                                         dtype: torch.dtype) -> None:
    model = random_biases(registry[name].build(**kwargs)).to(dtype).eval()
    graph = trace_channels(model)
    dead = select_dead(graph, random.Random(0))
    for g in graph.groups:
        if g.name in dead:
            kill(model, g, dead[g.name])
    x = torch.rand(1, 3, 29, 37, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        ref = model(x)
        result = prune_model(model, {g: graph.group(g).width - len(d) for g, d in dead.items()}, graph=graph)
        out = result.model(x)
    for g, d in dead.items():
        assert not set(result.kept[g]) & set(d)                  # L1 removed exactly the dead channels
    assert params(result.model) < params(model)
    assert_close(ref, out, dtype)


@pytest.mark.slow
def test_rlfn_pruned_to_46_48_is_rlfn_46_48() -> None:
    """52 ch / 6 blocks pruned to trunk 46 / mid 48: the params and MACs of RLFN(46, 48, 6 blocks), a state dict
    that loads strictly into it, and the unpruned output when the pruned channels were dead."""
    torch.manual_seed(0)
    model = random_biases(RLFN(feature_channels=52, num_blocks=6)).eval()
    graph = trace_channels(model)
    groups = named_groups(graph, width_spec_of(model))
    rng = random.Random(1)
    for g in groups["trunk"]:
        kill(model, g, rng.sample(range(52), 6))
    for g in groups["mid"]:
        kill(model, g, rng.sample(range(52), 4))
    x = torch.rand(1, 3, 29, 37, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        ref = model(x)
    result = prune_model(model, {"trunk": 46, "mid": 48}, graph=graph)
    direct = RLFN(feature_channels=46, mid_channels=48, num_blocks=6)
    direct.load_state_dict(result.model.state_dict(), strict=True)
    assert params(result.model) == params(direct) == sum(p.numel() for p in direct.parameters()) == 455678
    assert macs_ntire2022(meta(result.model)) == macs_ntire2022(meta(direct)) == 28_227_062_784
    with torch.no_grad():
        assert_close(ref, result.model.eval()(x), torch.float32)


def conv_macs(model: nn.Module, h: int, w: int) -> int:
    """k*k*Cin*Cout*H*W over RLFN's convs at LR size h x w (ESA's stride-2 conv, pooled conv3: their own sizes)."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            oh, ow = h, w
            if name.endswith("esa.conv2"):
                oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
            elif name.endswith("esa.conv3"):
                ch, cw = (h - 3) // 2 + 1, (w - 3) // 2 + 1
                oh, ow = (ch - 7) // 3 + 1, (cw - 7) // 3 + 1
            total += m.kernel_size[0] * m.kernel_size[1] * m.in_channels * m.out_channels // m.groups * oh * ow
    return total


def test_mac_formula_agrees_with_the_counter() -> None:
    """The pruned RLFN's MACs by formula: convs (k·k·Cin·Cout·H·W) plus the 2022 counter's LeakyReLU outputs."""
    model = prune_model(RLFN(), {"trunk": 46, "mid": 48}).model
    direct = RLFN(feature_channels=46, mid_channels=48)
    lrelu = 6 * (48 + 48 + 46) * 256 * 256
    assert conv_macs(model, 256, 256) == conv_macs(direct, 256, 256)
    assert conv_macs(model, 256, 256) + lrelu == macs_ntire2022(meta(model)) == 28_227_062_784


def test_select_and_importance() -> None:
    assert select_channels(torch.tensor([3.0, 1.0, 3.0, 2.0]), 2) == [0, 2]
    assert select_channels(torch.tensor([1.0, 1.0, 1.0]), 2) == [0, 1]          # ties: lower index
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1, esa_channels=4)
    graph = trace_channels(model)
    mid = graph.group("block_1.c1_r")
    expected = model.block_1.c1_r.weight.detach().abs().sum(dim=(1, 2, 3)).double()
    assert torch.allclose(channel_importance(model, mid, "l1"), expected)
    inout = expected + model.block_1.c2_r.weight.detach().abs().sum(dim=(0, 2, 3)).double()
    assert torch.allclose(channel_importance(model, mid, "l1_inout"), inout)


def test_act_criterion_keeps_the_busy_channel() -> None:
    """A channel with small filters but large values (the image carried through a residual) survives ``act``."""
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1, esa_channels=4).eval()
    with torch.no_grad():
        model.conv_1.weight[3] = 0.001
        model.conv_1.bias[3] = 50.0
    graph = trace_channels(model)
    x = [torch.rand(2, 3, 32, 32)]
    kept_act = prune_model(model, {"conv_1": 4}, graph=graph, criterion="act", calibration=x).kept["conv_1"]
    assert 3 in kept_act


def test_bad_requests() -> None:
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1, esa_channels=4)
    with pytest.raises(PruneError, match="no prunable width"):
        prune_model(model, {"nope": 3})
    with pytest.raises(PruneError, match="out of range"):
        prune_model(model, {"trunk": 9})


def test_apply_widths_builds_the_architecture() -> None:
    model = apply_widths(RLFN(feature_channels=8, mid_channels=8, num_blocks=1, esa_channels=4),
                         {"block_1.c1_r": 5, "conv_1": 6})
    assert model.block_1.c1_r.out_channels == 5 and model.block_1.c2_r.in_channels == 5
    assert model.conv_1.out_channels == 6 and model.upsampler[0].in_channels == 6
    assert model(torch.rand(1, 3, 24, 24)).shape == (1, 3, 96, 96)


# ---------------------------------------------------------------------------------------------------------------------
# entries and the command


@pytest.mark.slow
def test_prune_command_writes_an_rlfn_entry(registry, weights_dir, tmp_path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main

    if not registry["rlfn"].has_weights():
        pytest.skip("rlfn weights not available")
    out = tmp_path / "rlfn_46_48"
    result = CliRunner().invoke(main, ["prune", "rlfn", "--widths", "trunk=46,mid=48", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pruned = discover([out], include_defaults=False)["rlfn_pruned"]
    assert dict(pruned.spec.kwargs) == {"feature_channels": 46, "mid_channels": 48}
    assert pruned.spec.factory == "model.py:" + registry["rlfn"].spec.factory.split(":")[1]   # written out
    model = pruned.load()                                   # strict
    assert params(model) == 455678


@pytest.mark.slow
def test_prune_command_target_macs_and_generic_entries(registry, tmp_path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main
    from tests.helpers.entries import write_entry

    code = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, scale=4, width=16):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        f = self.head(x)
        return self.up(self.tail(torch.relu(self.body(f)) + f))
'''
    write_entry(tmp_path / "src", "net", model_code=code, factory="model.py:Net")
    out = tmp_path / "net_pruned"
    result = CliRunner().invoke(main, ["prune", "net", "--entries", str(tmp_path / "src"), "--trust", str(tmp_path / "src"), "--target-macs-ratio",
                                       "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pruned = discover([out], include_defaults=False)["net_pruned"]
    assert pruned.spec.factory == "pruned_model.py:build_pruned"
    model = pruned.load()
    source = discover([tmp_path / "src"], include_defaults=False)["net"].build()
    assert macs_ntire2022(model) <= 0.5 * macs_ntire2022(source)
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_reparameterized_rlfn_rep_prunes_by_family_widths(registry) -> None:
    """rep -> deploy -> prune composes: the deploy convs (``….rep_conv``) belong to RLFN's trunk/mid widths."""
    from ntirekit.nn.rep import reparameterize_model

    entry = registry["rlfn_rep"]
    small = {"feature_channels": 12, "mid_channels": 10, "num_blocks": 2, "esa_channels": 4}
    model = reparameterize_model(entry.build(**small)).eval()
    result = prune_model(model, {"trunk": 9, "mid": 7})
    target = entry.build(**dict(small, feature_channels=9, mid_channels=7), deploy=True)
    target.load_state_dict(result.model.state_dict(), strict=True)
    assert params(target) == params(RLFN(feature_channels=9, mid_channels=7, num_blocks=2, esa_channels=4))


_PASS_THROUGH = '''
from torch import nn


class Net(nn.Module):
    """1x1 head (4 channels) -> 1x1 tail -> pixel shuffle; the test sets weights that make it nearest upsampling."""

    def __init__(self, scale=4):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 1)
        self.tail = nn.Conv2d(4, 3 * scale * scale, 1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.tail(self.head(x)))
'''


def _nearest_psnr_on_the_check_crops(size: int = 96, scale: int = 4) -> float:
    """Independent figure: PSNR of nearest-neighbour upsampling on the centre crops, RGB, border = scale."""
    from ntirekit.data.bicubic import imresize
    from ntirekit.data.sample import SAMPLE_NAMES, sample_photo

    values = []
    for name in SAMPLE_NAMES:
        img = sample_photo(name)
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        hr = img[top:top + size, left:left + size].astype(np.float64)
        lr = imresize(np.ascontiguousarray(img[top:top + size, left:left + size]), 1 / scale)
        sr = np.repeat(np.repeat(lr.astype(np.float64), scale, 0), scale, 1)
        diff = (sr - hr)[scale:-scale, scale:-scale]
        values.append(10 * np.log10(255.0 ** 2 / np.mean(diff ** 2)))
    return float(np.mean(values))


@pytest.mark.slow
def test_prune_reports_psnr_and_warns_loudly_on_a_collapse(tmp_path) -> None:
    """The image runs through head channels 0-2, whose filters are tiny (0.01, read x100); channel 3 has big filters
    that nothing reads. ``l1`` keeps channel 3 and drops a colour (collapse, warned); ``act`` drops channel 3 and
    loses nothing."""
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.train.derive import save_state_dict
    from tests.helpers.entries import write_entry

    folder = write_entry(tmp_path / "src", "net", model_code=_PASS_THROUGH, factory="model.py:Net",
                         extra_toml='\n[weights]\nfile = "net.pth"\n')
    head_w, tail_w = torch.zeros(4, 3, 1, 1), torch.zeros(48, 4, 1, 1)
    for c in range(3):
        head_w[c, c] = 0.01
        tail_w[c * 16:(c + 1) * 16, c] = 100.0
    head_w[3] = 10.0
    save_state_dict({"head.weight": head_w, "head.bias": torch.zeros(4), "tail.weight": tail_w,
                     "tail.bias": torch.zeros(48)}, folder / "net.pth")
    expected_before = _nearest_psnr_on_the_check_crops()

    def prune(criterion: str):
        return CliRunner().invoke(main, ["prune", "net", "--entries", str(tmp_path / "src"), "--trust", str(tmp_path / "src"), "--widths", "head=3",
                                         "--criterion", criterion, "--out", str(tmp_path / criterion)])

    collapsed = prune("l1")
    assert collapsed.exit_code == 0, collapsed.output
    line = next(l for l in collapsed.stdout.splitlines() if "PSNR (challenge, 5 sample crops of 96x96" in l)
    before, after = (float(v) for v in re.findall(r"(-?\d+\.\d+) dB", line)[:2])
    assert before == pytest.approx(expected_before, abs=0.01) and after < before - 3
    (warning,) = [l for l in collapsed.stderr.splitlines() if l.startswith("WARNING")]
    assert "collapsed net" in warning and "--criterion act" in warning

    kept = prune("act")
    assert kept.exit_code == 0, kept.output
    line = next(l for l in kept.stdout.splitlines() if "PSNR (challenge" in l)
    before, after = (float(v) for v in re.findall(r"(-?\d+\.\d+) dB", line)[:2])
    assert before == after == pytest.approx(expected_before, abs=0.01) and "WARNING" not in kept.stderr
