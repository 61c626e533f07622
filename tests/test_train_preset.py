"""The ``cpu-small`` preset: what it sets, DIS flows carried by the training batches (cropped, flipped, rotated and
reversed with their frames), and a cut-and-resumed preset run ending equal to an uncut one (tiny sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.data.synth import MotionRange, synth_clips
from ntirekit.data.video import read_clip, write_png_folder, write_qp_file
from ntirekit.nn.flow import flow_warp
from ntirekit.train.presets import PRESETS, apply_preset
from ntirekit.train.video import FLOW_CACHE, ClipSequenceSource, load_clip_pairs

from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

PAN = MotionRange(min_pan=1.5, max_pan=2.5, max_zoom=0.0, max_rotation=0.0, foreground=0.0)


def _pairs(root, clips=2, frames=6, size=(64, 48)):
    """Clean synthetic pans as gt; lq = gt + fixed noise (a stand-in for compression), with a PQF QP pattern."""
    made = synth_clips(root / "clean", clips=clips, frames=frames, size=size, seed=1, ranges=PAN)
    for folder in made:
        gt = [np.asarray(f) for f in read_clip(folder).frames]
        rng = np.random.default_rng(len(folder.name))
        lq = [np.clip(f.astype(int) + rng.integers(-5, 6, f.shape), 0, 255).astype(np.uint8) for f in gt]
        write_png_folder(gt, root / "data" / "gt" / folder.name)
        write_png_folder(lq, root / "data" / "lq" / folder.name)
        write_qp_file(root / "data" / "lq" / folder.name / "qp.txt", ([37, 42, 41, 42] * frames)[:frames])
    return root / "data"


def test_apply_preset_fills_only_what_was_not_given():
    preset = PRESETS["cpu-small"]
    options = {k: None for k in preset.options}
    options["patch"] = 64
    merged, settings = apply_preset(preset, options, lambda name: name != "patch", {"mid_channels": 16})
    assert merged["patch"] == 64 and merged["batch_size"] == preset.options["batch_size"]
    assert settings["mid_channels"] == 16 and settings["flow"] == "dis"
    with pytest.raises(ValueError):
        apply_preset(preset, {}, lambda name: True, {})


def test_training_batches_carry_flows_that_align_their_frames(tmp_path):
    data = _pairs(tmp_path, clips=1, frames=6, size=(80, 64))
    clips = load_clip_pairs(data, default_pqf=lambda n: list(range(0, n, 4)), flows=True)
    assert (data / "lq" / clips[0].name / FLOW_CACHE).is_file()
    again = load_clip_pairs(data, flows=True)                    # read back from the cache
    assert np.array_equal(again[0].flows[0], clips[0].flows[0])
    source = ClipSequenceSource(clips, frames=4, patch=48, batch_size=8, pass_pqf=True, pass_flows=True)
    rng = np.random.default_rng(0)
    for _ in range(4):
        (lq, pqf, (fwd, bwd)), _gt = source.sample(rng)
        assert fwd.shape == bwd.shape == (8, 3, 2, 48, 48)
        for i in range(3):
            inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
            # backward[i] warps frame i+1 onto frame i, forward[i] frame i onto frame i+1
            to_i = flow_warp(lq[:, i + 1], bwd[:, i].permute(0, 2, 3, 1))
            to_next = flow_warp(lq[:, i], fwd[:, i].permute(0, 2, 3, 1))
            err_flow = (to_i - lq[:, i])[inner].abs().mean() + (to_next - lq[:, i + 1])[inner].abs().mean()
            err_none = (lq[:, i + 1] - lq[:, i])[inner].abs().mean() * 2
            assert err_flow < 0.5 * err_none


@pytest.mark.slow
def test_preset_run_cut_and_resumed_equals_uncut(tmp_path):
    data = _pairs(tmp_path)
    common = ["--preset", "cpu-small", "--data", str(data), "--val", str(data), "--val-frames", "4",
              "--set", "mid_channels=16", "--set", "num_blocks=1", "--set", "num_blocks_reconstruction=1",
              "--set", "hr_channels=4", "--patch", "32", "--frames", "3", "--batch-size", "2", "--steps", "4",
              "--val-every", "2", "--switch-at", "0.5", "--ckpt-every", "1", "--no-progress"]

    def train(name, *extra):
        result = CliRunner().invoke(main, ["train", "pqf_basicvsrpp", *common, "--ckpt-dir", str(tmp_path / name),
                                           "--out", str(tmp_path / "out" / name), "--name", name, *extra])
        assert result.exit_code == 0, result.output
        return result

    train("straight")
    cut = train("split", "--stop-after", "2")
    assert not (tmp_path / "out" / "split").exists() and "checkpoint" in cut.output
    train("split", "--resume")
    spec = (tmp_path / "out" / "split" / "entry.toml").read_text()
    assert 'flow = "dis"' in spec and "hr_channels = 4" in spec and "mid_channels = 16" in spec
    a = torch.load(tmp_path / "out" / "straight" / "straight.pth", weights_only=True)
    b = torch.load(tmp_path / "out" / "split" / "split.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist_a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["history"]
    hist_b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["history"]
    assert hist_a == hist_b and [h["step"] for h in hist_a] == [0, 2, 4]
    assert json.dumps(hist_a)  # plain numbers


def test_kaiming_init_keeps_the_image_in_the_features():
    """PyTorch's default init shrinks the signal layer after layer; He-normal init (fan-in, LeakyReLU 0.1) keeps the
    feature extractor's output varying over the frame. Residual blocks, the zeroed offset conv and conv_last are
    left as they were."""
    from ntirekit.train.video import kaiming_init
    from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

    def build():
        torch.manual_seed(0)
        return PQFBasicVSRPlusPlus(mid_channels=16, num_blocks=1, num_blocks_reconstruction=1, flow="zero",
                                   hr_channels=8, deform_groups=4)

    default, model = build(), build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert kaiming_init(model) > 0
    after = model.state_dict()
    block = "backbone.forward_1.main.2.0.conv1.weight"
    offset_last = "deform_align.forward_1.conv_offset.6.weight"
    assert torch.equal(after[block], before[block]) and not after[offset_last].any()
    assert torch.equal(after["conv_last.weight"], before["conv_last.weight"])
    first = "feat_extract.0.weight"
    assert not torch.equal(after[first], before[first])
    assert after[first].std().item() == pytest.approx((2 / (1 + 0.01) / 27) ** 0.5, rel=0.15)
    x = torch.rand(1, 1, 3, 64, 64)

    def spatial_std(m):
        with torch.no_grad():
            return m.feat_extract(x[:, 0]).std(dim=(-1, -2)).mean().item()

    assert spatial_std(model) > 4 * spatial_std(default)


def test_full_size_tail_options_keep_upstream_keys_by_default():
    from ntirekit.models.basicvsrpp import BasicVSRPlusPlus

    kw = dict(mid_channels=16, num_blocks=1, is_low_res_input=False, num_blocks_reconstruction=1, flow="zero")
    plain = BasicVSRPlusPlus(**kw).state_dict()
    assert not any(k.startswith("hr_body.") for k in plain) and plain["conv_hr.weight"].shape == (64, 64, 3, 3)
    torch.manual_seed(0)
    tail = BasicVSRPlusPlus(**kw, hr_channels=8, hr_blocks=2, hr_frame_input=True).eval()
    keys = tail.state_dict()
    assert keys["conv_hr.weight"].shape == (8, 11, 3, 3)
    assert {k for k in keys if k.startswith("hr_body.")} == {f"hr_body.{i}.conv{j}.{p}" for i in range(2)
                                                             for j in (1, 2) for p in ("weight", "bias")}
    # the tail sees the frame: a change of the frame inside one 4x4 block reaches the output through conv_hr even
    # with the coarse features fixed
    x = torch.rand(1, 2, 3, 32, 32)
    feats = tail.features(x)
    y = x.clone()
    y[0, 0, :, 9, 9] += 0.5
    with torch.no_grad():
        a, b = tail.upsample(x, feats), tail.upsample(y, feats)
    moved = (a - b)[0, 0].abs().sum(0) > 1e-6
    assert moved[9, 9] and moved[8:11, 8:11].sum() > 1 and not moved[20:, 20:].any()
