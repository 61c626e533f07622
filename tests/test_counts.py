"""Counting rules on small hand-made modules, each against its formula (the 2022 counter, fvcore, activations)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from ntirekit.measure import counts as C


def conv_out(size: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


# --- convolutions ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("groups,stride,dilation,padding", [(1, 1, 1, 1), (4, 2, 2, 2), (8, 3, 1, 0), (2, 1, 3, 3)])
def test_conv2d_macs_follow_the_formula(groups: int, stride: int, dilation: int, padding: int) -> None:
    conv = nn.Conv2d(8, 16, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=True)
    shape = (2, 8, 17, 19)
    h, w = conv_out(17, 3, stride, padding, dilation), conv_out(19, 3, stride, padding, dilation)
    expected = 3 * 3 * 8 * (16 // groups) * 2 * h * w            # bias not counted, batch counted
    assert C.macs_ntire2022(conv, shape) == expected
    assert C.macs_fvcore(conv, shape) == expected                  # fvcore agrees on a plain conv
    assert C.activations_and_convs(conv, shape) == (2 * 16 * h * w, 1)


def test_non_square_kernel() -> None:
    conv = nn.Conv2d(4, 6, (1, 5), padding=(0, 2))
    assert C.macs_ntire2022(conv, (1, 4, 10, 12)) == 1 * 5 * 4 * 6 * 10 * 12


def test_conv_transpose_counts_output_positions() -> None:
    """The 2022 counter multiplies by the *output* size (stride² × fvcore's input-size count)."""
    deconv = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    shape = (1, 8, 10, 12)
    assert C.macs_ntire2022(deconv, shape) == 4 * 4 * 8 * 4 * 20 * 24
    assert C.macs_fvcore(deconv, shape) == 4 * 4 * 8 * 4 * 10 * 12
    assert C.activations_and_convs(deconv, shape) == (4 * 20 * 24, 1)


def test_conv_transpose_groups() -> None:
    deconv = nn.ConvTranspose2d(8, 4, 3, stride=1, padding=1, groups=2)
    assert C.macs_ntire2022(deconv, (1, 8, 6, 7)) == 3 * 3 * 8 * (4 // 2) * 6 * 7


def test_conv1d_and_conv3d_are_not_counted_but_flagged() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c3 = nn.Conv3d(1, 2, 1)
            self.c2 = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c2(x)
            return y + self.c3(y.unsqueeze(1)).mean(1)

    m = Mixed()
    counts = C.count(m, (1, 3, 8, 8), fvcore=False)
    assert counts.macs_ntire2022 == 3 * 3 * 64                       # only the Conv2d
    assert counts.convs == 1
    assert counts.functional_convs == 1
    assert any("c3 (Conv3d)" in w for w in counts.warnings)


# --- activation modules, BN, Linear ----------------------------------------------------------------------------------

@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU(inplace=True), nn.PReLU(), nn.ELU(), nn.LeakyReLU(0.05),
                                 nn.ReLU6()])
def test_activation_modules_count_their_output(act: nn.Module) -> None:
    m = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False), act)
    assert C.macs_ntire2022(m, (1, 3, 9, 11)) == 9 * 3 * 5 * 99 + 5 * 99


@pytest.mark.parametrize("act", [nn.GELU(), nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Hardswish()])
def test_other_activation_modules_count_zero(act: nn.Module) -> None:
    m = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False), act)
    assert C.macs_ntire2022(m, (1, 3, 9, 11)) == 9 * 3 * 5 * 99


def test_relu_module_counts_but_functional_relu_is_invisible() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(F.relu(self.conv(x)), 0.1)

    module_form = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    shape = (1, 3, 16, 16)
    conv = 9 * 3 * 4 * 256
    assert C.macs_ntire2022(module_form, shape) == conv + 4 * 256
    assert C.macs_ntire2022(Functional(), shape) == conv
    assert C.macs_fvcore(module_form, shape) == conv                 # fvcore: activations count 0


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm(affine: bool) -> None:
    bn = nn.BatchNorm2d(6, affine=affine).eval()
    n = 2 * 6 * 7 * 5
    assert C.macs_ntire2022(bn, (2, 6, 7, 5)) == (2 * n if affine else n)


def test_linear_in_times_out() -> None:
    assert C.macs_ntire2022(nn.Linear(12, 7), (1, 12)) == 12 * 7
    assert C.macs_ntire2022(nn.Linear(12, 7), (3, 12)) == 3 * 12 * 7
    assert C.macs_fvcore(nn.Linear(12, 7), (3, 12)) == 3 * 12 * 7


def test_linear_on_nd_input_keeps_the_official_formula_and_warns() -> None:
    lin = nn.Linear(8, 4)
    counts = C.count(lin, (1, 10, 8), fvcore=False)
    assert counts.macs_ntire2022 == 1 * 10 * 10                      # shape[0]*shape[1]*out.shape[1]: the quirk
    assert any("Linear" in w and "3-D" in w for w in counts.warnings)


def test_everything_else_counts_zero() -> None:
    m = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.MaxPool2d(2), nn.PixelShuffle(1),
                      nn.AdaptiveAvgPool2d(1), nn.Identity())
    assert C.macs_ntire2022(m, (1, 3, 8, 8)) == 0
    assert C.activations_and_convs(m, (1, 3, 8, 8)) == (0, 0)


# --- per forward call ------------------------------------------------------------------------------------------------

class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.act(self.conv(x))))


def test_module_called_twice_counts_twice() -> None:
    shape = (1, 4, 10, 10)
    per_call = 9 * 4 * 4 * 100
    assert C.macs_ntire2022(Twice(), shape) == 2 * per_call + 2 * 4 * 100
    assert C.activations_and_convs(Twice(), shape) == (2 * 4 * 100, 2)
    assert C.macs_fvcore(Twice(), shape) == 2 * per_call


def test_conv_subclass_is_counted_like_a_conv() -> None:
    class MyConv(nn.Conv2d):
        pass

    assert C.activations_and_convs(MyConv(3, 2, 1), (1, 3, 5, 5)) == (50, 1)


# --- the invisible-convolution detector ------------------------------------------------------------------------------

class RepBlock(nn.Module):
    """Merges two branches functionally in forward (what the challenge counters cannot see)."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.w3 = nn.Parameter(torch.randn(c, c, 3, 3))
        self.w1 = nn.Parameter(torch.randn(c, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.w3 + F.pad(self.w1, [1, 1, 1, 1]), padding=1)


def test_functional_conv_is_invisible_and_warned() -> None:
    m = nn.Sequential(nn.Conv2d(3, 4, 1), RepBlock(), nn.Conv2d(4, 3, 1))
    counts = C.count(m, (1, 3, 12, 12))
    assert counts.macs_ntire2022 == 3 * 4 * 144 + 4 * 3 * 144          # the RepBlock counts 0
    assert counts.convs == 2
    assert counts.functional_convs == 1
    assert counts.macs_fvcore == 3 * 4 * 144 + 9 * 4 * 4 * 144 + 4 * 3 * 144   # the tracer sees it
    warning = next(w for w in counts.warnings if "invisible" in w)
    assert "1 (RepBlock)" in warning


def test_conv_module_running_two_convolutions_is_flagged() -> None:
    class DoubleConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = super().forward(x)
            return y + F.conv2d(x, self.weight, padding=self.padding)

    counts = C.count(nn.Sequential(DoubleConv(3, 3, 3, padding=1)), (1, 3, 8, 8), fvcore=False)
    assert counts.convs == 1
    assert counts.functional_convs == 1
    assert any("0 (DoubleConv)" in w for w in counts.warnings)


def test_plain_model_has_no_warning() -> None:
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.05), nn.Conv2d(8, 48, 3, padding=1),
                      nn.PixelShuffle(4), nn.Upsample(scale_factor=0.5, mode="bilinear"))
    counts = C.count(m, (1, 3, 16, 16))
    assert counts.warnings == []
    assert counts.functional_convs == 0
    # fvcore adds 4 per output element of bilinear upsampling on top of the convs
    convs = 9 * 3 * 8 * 256 + 9 * 8 * 48 * 256
    assert counts.macs_fvcore == convs + 4 * 3 * 32 * 32
    assert counts.flops_torch == 2 * convs


# --- fvcore vs torch cross-check -------------------------------------------------------------------------------------

def test_cross_check_ignores_known_differences() -> None:
    assert C.compare_fvcore_torch({"conv": 10, "upsample_bilinear2d": 4, "batch_norm": 3, "linear": 6},
                                  {"convolution": 20, "addmm": 12}) == []


def test_cross_check_names_disagreeing_ops() -> None:
    out = C.compare_fvcore_torch({"conv": 10}, {"convolution": 22, "_scaled_dot_product_flash_attention": 50})
    assert any("conv MACs differ" in w and "aten.convolution" in w for w in out)
    assert any("_scaled_dot_product_flash_attention" in w for w in out)
    out = C.compare_fvcore_torch({"conv": 10, "some_new_op": 5}, {"convolution": 20})
    assert out == ["fvcore counts some_new_op (5 MACs) which torch's FlopCounterMode does not"]


def test_matmul_family_agrees_on_attention_like_model() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = x.flatten(2).transpose(1, 2)                             # B, N, C
            q = self.q(t)
            return torch.bmm(q, t.transpose(1, 2)).softmax(-1) @ t

    counts = C.count(Attn(), (1, 8, 4, 4))
    assert not [w for w in counts.warnings if "differ" in w], counts.warnings


# --- count() as a whole ----------------------------------------------------------------------------------------------

def test_count_collects_everything_and_serialises() -> None:
    m = Twice()
    m.train()
    counts = C.count(m, (1, 4, 10, 10))
    assert m.training                                                    # mode restored
    assert counts.params == C.params(m) == 4 * 4 * 9 + 4
    assert counts.input_shape == (1, 4, 10, 10)
    assert counts.activations_fvcore == 2 * 4 * 100
    d = json.loads(json.dumps(counts.to_dict()))
    assert d["input_shape"] == [1, 4, 10, 10] and d["convs"] == 2


def test_default_shape_is_the_challenge_shape() -> None:
    conv = nn.Conv2d(3, 1, 1, bias=False)
    assert C.macs_ntire2022(conv) == 3 * 256 * 256
    assert C.count(conv, fvcore=False).input_shape == (1, 3, 256, 256)


def test_shared_parameters_count_once() -> None:
    conv = nn.Conv2d(2, 2, 1)
    assert C.params(nn.Sequential(conv, conv)) == 6


def test_data_dependent_model_falls_back_to_a_real_pass() -> None:
    class Dynamic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y * 2 if float(y.abs().sum().item()) >= 0 else y

    counts = C.count(Dynamic(), (1, 3, 4, 4), fvcore=False)
    assert counts.macs_ntire2022 == 9 * 16 and counts.convs == 1


def test_broken_forward_raises_count_error() -> None:
    with pytest.raises(C.CountError):
        C.macs_ntire2022(nn.Conv2d(3, 3, 1), (1, 4, 8, 8))


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError):
        C.macs_ntire2022(nn.Conv2d(3, 3, 1), (1, 3, 0, 8))


# --- the profile command ---------------------------------------------------------------------------------------------

def test_profile_cli_table_and_json(tmp_path) -> None:  # noqa: ANN001
    from tests.helpers.entries import write_entry

    from ntirekit.cli import main

    write_entry(tmp_path, "tiny_profile")
    runner = CliRunner()
    res = runner.invoke(main, ["profile", "tiny_profile", "--entries", str(tmp_path), "--input-shape", "1,3,16,16"])
    assert res.exit_code == 0, res.output
    for label in ("FLOPs [G] (2022)", "FLOPs [G] (fvcore)", "Params [M]", "Acts [M]", "#Conv"):
        assert label in res.output
    res = runner.invoke(main, ["profile", "tiny_profile", "--entries", str(tmp_path), "--input-shape", "1,3,16,16",
                               "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["macs_ntire2022"] == 9 * 3 * 48 * 256 and d["convs"] == 1 and d["weights"] == "random"
    res = runner.invoke(main, ["profile", "no_such_entry", "--entries", str(tmp_path)])
    assert res.exit_code != 0 and "no_such_entry" in res.output
