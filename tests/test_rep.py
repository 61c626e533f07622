"""Re-parameterizable blocks: exact merges (float64 and float32 bounds), idempotence, deploy forms, whole entries."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from ntirekit.train.bundle import kit_imports
from ntirekit.core.registry import discover
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.nn.rep import ECB, Conv3XC, RepBlock, RepVGGBlock, is_reparameterized, reparameterize_model

BOUNDS = {torch.float64: 1e-9, torch.float32: 1e-5}


def assert_close(ref: torch.Tensor, out: torch.Tensor, dtype: torch.dtype) -> None:
    """max |Δ| <= bound * max(1, max |ref|) over the whole map, border pixels included."""
    allowed = BOUNDS[dtype] * max(1.0, ref.abs().max().item())
    worst = (ref - out).abs().max().item()
    assert worst <= allowed, f"max |Δ| = {worst:.3g} > {allowed:.3g}"


def randomize(model: nn.Module, seed: int = 0, keep_kernels: bool = False) -> nn.Module:
    """Non-zero random weights and biases everywhere, random BatchNorm statistics and affine parameters.

    ``keep_kernels``: leave the conv kernels at PyTorch's default initialisation (whole models: N(0.05, 0.3) kernels
    through 20 layers blow activations up to 1e5, far from any trained model) and randomise everything else.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if keep_kernels and p.dim() == 4 and p.shape[-1] > 0 and p.shape[1] > 1:
                continue
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + 0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


BLOCKS = {
    "ecb_idt_prelu": lambda **kw: ECB(5, 5, 2.0, "prelu", with_idt=True, **kw),
    "ecb_3to7_linear": lambda **kw: ECB(3, 7, 2.0, "linear", **kw),
    "conv3xc": lambda **kw: Conv3XC(4, 6, gain=2, **kw),
    "conv3xc_idt_lrelu": lambda **kw: Conv3XC(5, 5, gain=3, act="lrelu", with_idt=True, **kw),
    "repvgg_idt": lambda **kw: RepVGGBlock(5, 5, **kw),
    "repvgg_3to6": lambda **kw: RepVGGBlock(3, 6, act="linear", **kw),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_merge_is_exact(kind: str, dtype: torch.dtype) -> None:
    block = randomize(BLOCKS[kind]()).to(dtype).eval()
    x = torch.randn(2, block.in_channels, 13, 17, generator=torch.Generator().manual_seed(1), dtype=dtype) * 3
    ref = block(x)
    block.reparameterize()
    assert block.deployed
    assert [type(m) for m in block.modules() if isinstance(m, nn.Conv2d)] == [nn.Conv2d]
    for name in type(block)._branches:
        assert not hasattr(block, name)
    assert_close(ref, block(x), dtype)


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_reparameterize_is_idempotent_and_matches_deploy_build(kind: str) -> None:
    block = randomize(BLOCKS[kind]()).eval()
    block.reparameterize()
    conv = block.rep_conv
    state = copy.deepcopy(block.state_dict())
    block.reparameterize()
    assert block.rep_conv is conv
    assert all(torch.equal(state[k], v) for k, v in block.state_dict().items())
    deploy = BLOCKS[kind](deploy=True)
    deploy.load_state_dict(state, strict=True)
    x = torch.randn(1, block.in_channels, 9, 11)
    assert torch.equal(deploy.eval()(x), block(x))


def test_forward_does_not_merge_weights() -> None:
    """The deploy forward is the plain conv: changing rep_conv changes the output, the old branches are gone."""
    block = randomize(ECB(4, 4, 2.0, "linear")).eval()
    block.reparameterize()
    x = torch.randn(1, 4, 7, 9)
    y = block(x)
    with torch.no_grad():
        block.rep_conv.bias.add_(1.0)
    assert torch.allclose(block(x), y + 1.0, atol=1e-4)


def test_ecb_pads_its_1x1_output_with_the_bias() -> None:
    """Without bias padding the merge would differ exactly at the border pixels: check the border alone."""
    block = randomize(ECB(3, 4, 2.0, "linear")).double().eval()
    x = torch.randn(1, 3, 6, 8, dtype=torch.float64)
    ref = block(x)
    block.reparameterize()
    out = block(x)
    border = torch.ones_like(ref, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    assert_close(ref[border], out[border], torch.float64)


def test_repvgg_matches_in_eval_mode_only() -> None:
    block = randomize(RepVGGBlock(4, 4))
    x = torch.randn(2, 4, 5, 7)
    block.eval()
    ref = block(x)
    merged = copy.deepcopy(block)
    merged.reparameterize()
    assert_close(ref, merged(x), torch.float32)


class _TeamBlock(nn.Module):
    """A team's own block with a duck-typed reparameterize(): conv + identity skip, merged into the conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if self.merged else self.conv(x) + x

    def reparameterize(self) -> None:
        if not self.merged:
            c = self.conv.out_channels
            with torch.no_grad():
                self.conv.weight[torch.arange(c), torch.arange(c), 1, 1] += 1
            self.merged = True


def test_reparameterize_model_walks_everything() -> None:
    model = nn.Sequential(ECB(3, 6, act="prelu"), nn.Sequential(Conv3XC(6, 6), RepVGGBlock(6, 6)), _TeamBlock(6),
                          nn.Conv2d(6, 3, 1))
    randomize(model).double().eval()
    x = torch.randn(1, 3, 13, 17, dtype=torch.float64)
    ref = model(x)
    assert not is_reparameterized(model)
    reparameterize_model(model)
    assert is_reparameterized(model) and model[2].merged
    assert_close(ref, model(x), torch.float64)
    reparameterize_model(model)                       # idempotent on the whole model
    assert_close(ref, model(x), torch.float64)


# ---------------------------------------------------------------------------------------------------------------------
# whole entries

SMALL = {"ecbsr": {"module_nums": 2, "channel_nums": 8},
         "rlfn_rep": {"feature_channels": 8, "mid_channels": 6, "num_blocks": 2, "esa_channels": 4}}


@pytest.fixture(scope="module")
def registry():
    return discover()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name, rep", [("ecbsr", None), ("rlfn_rep", "conv3xc"), ("rlfn_rep", "ecb"),
                                       ("rlfn_rep", "repvgg")])
def test_whole_model_equivalence(registry, name: str, rep: str | None, dtype: torch.dtype) -> None:
    kwargs = dict(SMALL[name], **({"rep": rep} if rep else {}))
    entry = registry[name]
    model = randomize(entry.build(**kwargs), keep_kernels=True).to(dtype).eval()
    x = torch.rand(1, 3, 29, 37, generator=torch.Generator().manual_seed(2), dtype=dtype)
    ref = model(x)
    reparameterize_model(model)
    assert is_reparameterized(model)
    assert_close(ref, model(x), dtype)
    deploy = entry.build(**kwargs, deploy=True).to(dtype).eval()
    deploy.load_state_dict(model.state_dict(), strict=True)
    assert not any(isinstance(m, RepBlock) and not m.deployed for m in deploy.modules())
    assert_close(ref, deploy(x), dtype)


@pytest.mark.slow
def test_rlfn_rep_deploy_has_rlfn_counts(registry) -> None:
    from ntirekit.measure.counts import macs_ntire2022, params

    deploy = registry["rlfn_rep"].build(deploy=True).to("meta")
    rlfn = registry["rlfn"].build().to("meta")
    assert params(deploy) == params(rlfn) == 543740
    assert macs_ntire2022(deploy) == macs_ntire2022(rlfn)


@pytest.mark.slow
def test_reparam_writes_a_deploy_entry(registry, tmp_path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.measure.counts import functional_convs

    entry = registry["ecbsr"]
    trained = randomize(entry.build(), keep_kernels=True).eval()     # stands for a trained training-form model
    ckpt = tmp_path / "ecbsr_trained.pth"
    torch.save(trained.state_dict(), ckpt)
    out = tmp_path / "ecbsr_deploy"
    result = CliRunner().invoke(main, ["reparam", "ecbsr", "--weights", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "max |training - deploy|" in result.output
    deployed = discover([out], include_defaults=False)["ecbsr_deploy"]
    assert deployed.spec.kwargs["deploy"] is True
    assert deployed.spec.factory == "model.py:ECBSR"      # the kit's network, written out (self-contained)
    assert kit_imports((out / "model.py").read_text()) == []       # runs without the kit
    assert (out / "ecbsr_deploy.pth").is_file()
    model = deployed.load()                          # strict=True inside
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and all(c.kernel_size == (3, 3) for c in convs)
    assert not any(isinstance(m, RepBlock) and not m.deployed for m in model.modules())
    assert functional_convs(model, (1, 3, 16, 16))[0] == 0
    x = torch.rand(1, 3, 13, 17) * 255
    with torch.no_grad():
        assert_close(trained(x), model(x), torch.float32)
    again = CliRunner().invoke(main, ["reparam", "ecbsr", "--out", str(out)])
    assert again.exit_code != 0 and "not empty" in again.output


def test_reparam_refuses_an_entry_without_deploy_form(tmp_path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "e", "tiny")
    result = CliRunner().invoke(main, ["reparam", "tiny", "--entries", str(tmp_path / "e"), "--trust", str(tmp_path / "e"), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code != 0 and "deploy" in result.output


@pytest.mark.slow
def test_efficiency_tracks_measure_the_deploy_form_unless_asked() -> None:
    """rlfn_rep (RLFN 52 ch, 6 blocks with Conv3XC blocks) is counted in its deploy form by default: exactly the
    plain RLFN's 543,740 parameters (bytedance/RLFN rlfn_x4.pth holds 543,740); --training-form keeps the branches."""
    entry = discover()["rlfn_rep"]
    options = EvalOptions(track="complexity", device="cpu", progress=False, input_shape=(1, 3, 32, 32),
                          extra={"fvcore": False})
    deploy = run_track([entry], options)[0]
    assert deploy["status"] == "ok" and deploy["form"] == "deploy" and deploy["params"] == 543_740
    training = run_track([entry], dataclasses.replace(options, extra={"fvcore": False, "training_form": True}))[0]
    assert training["form"] == "training" and training["params"] > deploy["params"]
