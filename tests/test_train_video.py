"""Video QE training: aligned sequence crops, duplicates dropped, PQF positions, depth growth, staged loss, resume,
and the train command on a vqe entry. Tiny models and tiny synthetic clips (the BasicVSR++ growth test runs the real
network once at its smallest legal size)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.core.registry import discover
from ntirekit.core.spec import EntryError, InputContract
from ntirekit.data.video import write_png_folder, write_qp_file
from ntirekit.train.loop import TrainConfig, Trainer
from ntirekit.train.losses import StagedLoss, staged_loss, switch_step
from ntirekit.train.video import (ClipSequenceSource, TrainClip, augment_sequence, flow_freezer, grow_from_state,
                                  identity_init, load_clip_pairs, vqe_validator, zero_flow)

TINY_VQE = '''
import torch
from torch import nn


class TinyVQE(nn.Module):
    """Per-frame residual conv net that also uses its PQF positions (a learned gain on the PQF frames)."""

    min_input_size = 1
    input_multiple = 1

    def __init__(self, channels: int = 4):
        super().__init__()
        self.body = nn.Conv2d(3, channels, 3, padding=1)
        self.conv_last = nn.Conv2d(channels, 3, 3, padding=1)
        self.pqf_gain = nn.Parameter(torch.tensor(0.5))

    def default_pqf(self, n):
        return list(range(0, n, 4))

    def forward(self, lqs, pqf=None):
        n, t, c, h, w = lqs.shape
        y = self.conv_last(torch.relu(self.body(lqs.reshape(n * t, c, h, w)))).reshape(n, t, c, h, w)
        mask = torch.zeros(1, t, 1, 1, 1)
        for p in (self.default_pqf(t) if pqf is None else pqf):
            mask[0, p] = 1.0
        return lqs + y * (1 + self.pqf_gain * mask)
'''


def _tiny_module():
    namespace: dict = {}
    exec(TINY_VQE, namespace)
    return namespace["TinyVQE"]


def _clip(t: int = 9, h: int = 13, w: int = 17, seed: int = 0) -> np.ndarray:
    """Random frames in 0..200; channel 2 holds 20 * frame index everywhere (identifies the frame)."""
    frames = (np.random.default_rng(seed).random((t, h, w, 3)) * 200).astype(np.uint8)
    frames[..., 2] = (np.arange(t) * 20)[:, None, None]
    return frames


def _write_pairs(root, lq: np.ndarray, gt: np.ndarray, name: str = "v", qps: list[int] | None = None) -> None:
    write_png_folder(list(lq), root / "lq" / name)
    write_png_folder(list(gt), root / "gt" / name)
    if qps is not None:
        write_qp_file(root / "lq" / name / "qp.txt", qps, ["I"] + ["P"] * (len(qps) - 1))


# ---------------------------------------------------------------------------------------------------------------------
# batches

def test_sequence_crops_are_aligned_consecutive_and_augmented() -> None:
    """gt = lq + 7 everywhere, so every sample's gt - lq is exactly 7/255 whatever crop, flip, rotation or reversal;
    each sample is one of the 8 transforms of a crop of N consecutive frames (forward or reversed)."""
    lq = _clip()
    gt = lq + 7
    source = ClipSequenceSource([TrainClip("v", lq, gt, None)], frames=4, patch=8, batch_size=3)
    rng = np.random.default_rng(0)
    seen_k, seen_reverse = set(), set()
    for _ in range(20):
        x, y = source.sample(rng)
        assert x.shape == y.shape == (3, 4, 3, 8, 8)
        assert torch.allclose(y - x, torch.full_like(x, 7 / 255), atol=1e-6)
        for seq in (x * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy():
            ids = seq[:, 0, 0, 2].astype(int) // 20
            step = int(ids[1] - ids[0])
            assert step in (1, -1) and list(ids) == list(range(ids[0], ids[0] + 4 * step, step))
            seen_reverse.add(step == -1)
            ordered = seq[::step]
            start = int(ids.min())
            matches = [(k, top, left) for k in range(8) for top in range(13 - 8 + 1) for left in range(17 - 8 + 1)
                       if np.array_equal(augment_sequence(lq[start:start + 4, top:top + 8, left:left + 8], k), ordered)]
            assert matches, "the sample is no transform of a crop of the clip"
            seen_k.update(k for k, _, _ in matches)
    assert seen_reverse == {True, False} and len(seen_k) == 8


def test_duplicates_are_dropped_and_pqf_positions_follow(tmp_path) -> None:
    """Compressed frames 3 (= 2) and 6, 7 (= 5) are duplicates: dropped with their clean frames; the QP file's PQFs
    (0, 4, 8) move to the frames that stay (0, 3, 5); no training sequence repeats a frame."""
    lq = _clip(t=10, seed=1)
    lq[3] = lq[2]
    lq[6] = lq[7] = lq[5]
    gt = _clip(t=10, seed=2)
    qps = [37, 42, 41, 42, 38, 42, 41, 42, 38, 42]
    _write_pairs(tmp_path, lq, gt, qps=qps)
    (clip,) = load_clip_pairs(tmp_path)
    keep = [0, 1, 2, 4, 5, 8, 9]
    assert clip.duplicates == 3
    assert np.array_equal(clip.lq, lq[keep]) and np.array_equal(clip.gt, gt[keep])
    assert clip.pqf == [0, 3, 5]
    source = ClipSequenceSource([clip], frames=3, patch=8, augment=False, reverse=False, pass_pqf=True)
    rng = np.random.default_rng(0)
    for _ in range(20):
        (x, pqf), _ = source.sample(rng)
        frames = x[0]
        assert all(not torch.equal(frames[i], frames[i + 1]) for i in range(len(frames) - 1))
        first = int(round(float(frames[0, 2, 0, 0]) * 255)) // 20            # original frame index
        start = keep.index(first)
        assert pqf == [p - start for p in (0, 3, 5) if start <= p < start + 3]


def test_batches_share_their_pqf_positions() -> None:
    """With several sequences per batch, every member has the PQF positions passed with the batch."""
    lq = _clip(t=12)
    clip = TrainClip("v", lq, lq, [0, 4, 8])
    source = ClipSequenceSource([clip], frames=5, patch=8, batch_size=4, pass_pqf=True)
    rng = np.random.default_rng(3)
    for _ in range(10):
        (x, pqf), _ = source.sample(rng)
        for seq in x:
            ids = [int(round(float(f[2, 0, 0]) * 255)) // 20 for f in seq]
            assert [i for i, frame in enumerate(ids) if frame in (0, 4, 8)] == pqf


def test_too_small_clips_are_refused() -> None:
    clip = TrainClip("v", _clip(t=3), _clip(t=3), None)
    with pytest.raises(ValueError, match="no training clip"):
        ClipSequenceSource([clip], frames=4, patch=8)
    with pytest.raises(ValueError, match="no training clip"):
        ClipSequenceSource([clip], frames=2, patch=14)


# ---------------------------------------------------------------------------------------------------------------------
# initialisation

def _perturbed(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


@pytest.mark.slow
def test_depth_growth_keeps_the_output() -> None:
    """A BasicVSR++-family model grown from 1 to 3 reconstruction blocks and 1 to 2 blocks per propagation branch
    gives exactly the shallower model's output; without zeroing the new blocks it would not."""
    from ntirekit.models.basicvsrpp import PQFBasicVSRPlusPlus

    small_kw = dict(mid_channels=16, num_blocks=1, num_blocks_reconstruction=1, is_low_res_input=False)
    torch.manual_seed(0)
    small = _perturbed(PQFBasicVSRPlusPlus(**small_kw), 1).eval()
    torch.manual_seed(1)
    big = PQFBasicVSRPlusPlus(**{**small_kw, "num_blocks": 2, "num_blocks_reconstruction": 3}).eval()
    new = grow_from_state(big, small.state_dict())
    assert sorted(new) == sorted(["reconstruction.main.2.1", "reconstruction.main.2.2"]
                                 + [f"backbone.{b}.main.2.1" for b in ("backward_1", "forward_1", "backward_2",
                                                                      "forward_2")])
    x = torch.rand(1, 3, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = small(x, pqf=[0])
        assert torch.equal(big(x, pqf=[0]), expected)
        big.reconstruction.main[2][2].conv2.weight.normal_(0, 0.1)
        assert not torch.allclose(big(x, pqf=[0]), expected, atol=1e-4)


def test_growth_refuses_models_that_are_not_shallower() -> None:
    from ntirekit.models.basicvsrpp import BasicVSRPlusPlus

    kw = dict(mid_channels=16, num_blocks=1, num_blocks_reconstruction=2, is_low_res_input=False)
    deep = BasicVSRPlusPlus(**kw)
    with pytest.raises(EntryError, match="lacks"):
        grow_from_state(BasicVSRPlusPlus(**{**kw, "num_blocks_reconstruction": 1}), deep.state_dict())
    with pytest.raises(EntryError, match="shapes differ"):
        grow_from_state(BasicVSRPlusPlus(**{**kw, "mid_channels": 32}), deep.state_dict())
    partial = {k: v for k, v in deep.state_dict().items() if k != "conv_last.bias"}
    with pytest.raises(EntryError, match="outside whole new residual blocks"):
        grow_from_state(BasicVSRPlusPlus(**kw), partial)


def test_identity_and_zero_flow_initialisations() -> None:
    from ntirekit.nn.spynet import SPyNet

    model = _tiny_module()()
    identity_init(model)
    x = torch.rand(1, 3, 3, 8, 8)
    assert torch.equal(model(x), x)
    with pytest.raises(EntryError, match="conv_last"):
        identity_init(nn.Conv2d(3, 3, 1))

    holder = nn.Module()
    holder.spynet = SPyNet()
    holder.head = nn.Conv2d(3, 3, 1)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        assert float(holder.spynet(a, b).abs().max()) > 0
        zero_flow(holder)
        assert torch.equal(holder.spynet(a, b), torch.zeros(1, 2, 32, 32))
    freeze = flow_freezer(holder, 3)
    freeze(2)
    assert not any(p.requires_grad for p in holder.spynet.parameters()) and holder.head.weight.requires_grad
    freeze(3)
    assert all(p.requires_grad for p in holder.spynet.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# staged loss, trainer

class _Recorder:
    def __init__(self, tag: int, log: list[int]):
        self.tag, self.log, self.__name__ = tag, log, f"loss{tag}"

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.log.append(self.tag)
        return nn.functional.mse_loss(output, target)


class _ToySource:
    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(rng.standard_normal((2, 3, 4, 4))).float()
        return x, x.flip(1)


@pytest.mark.slow
def test_staged_loss_switches_at_the_right_step_also_after_resume(tmp_path) -> None:
    assert switch_step(0.7, 10) == 7 and switch_step(3, 10) == 3
    assert staged_loss("charbonnier", "l2", 0.7, 10).describe() == "charbonnier loss, then l2 from step 7"
    with pytest.raises(ValueError):
        staged_loss("charbonnier", "l2", 10, 10)
    with pytest.raises(ValueError):
        StagedLoss([(1, "l1")])

    def run(until: int | None, resume: bool, log: list[int]) -> None:
        torch.manual_seed(0)
        loss = StagedLoss([(0, _Recorder(0, log)), (switch_step(0.7, 10), _Recorder(1, log))])
        trainer = Trainer(nn.Conv2d(3, 3, 1), _ToySource(), loss, TrainConfig(steps=10, ckpt_every=1, progress=False),
                          ckpt_dir=tmp_path / "ckpt")
        if resume:
            assert trainer.resume()
        trainer.run(until=until)

    straight: list[int] = []
    run(None, False, straight)
    assert straight == [0] * 7 + [1] * 3
    shutil.rmtree(tmp_path / "ckpt")
    first: list[int] = []
    run(5, False, first)
    rest: list[int] = []
    run(None, True, rest)
    assert first + rest == straight


def _video_trainer(tmp_path, data, model_cls, name: str):
    from ntirekit.train.losses import staged_loss as make_loss

    torch.manual_seed(4)
    model = model_cls()
    clips = load_clip_pairs(data, default_pqf=model.default_pqf)
    source = ClipSequenceSource(clips, frames=3, patch=8, batch_size=2, pass_pqf=True)
    config = TrainConfig(steps=6, lr=1e-2, val_every=2, ckpt_every=1, seed=7, progress=False)
    validate = vqe_validator(data, InputContract(data_range=1.0), torch.device("cpu"))
    return Trainer(model, source, make_loss("charbonnier", "l2", 0.5, 6), config, validate=validate,
                   ckpt_dir=tmp_path / name)


def test_video_training_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    """Stop a video run after step 3, resume it in a fresh trainer: same weights, history and best state as 6 steps
    straight (sequence sampling, staged loss and validation ΔPSNR included)."""
    lq = _clip(t=8, seed=3)
    gt = np.clip(lq.astype(int) + np.random.default_rng(4).integers(-6, 7, lq.shape), 0, 255).astype(np.uint8)
    _write_pairs(tmp_path / "data", lq, gt)
    model_cls = _tiny_module()
    straight = _video_trainer(tmp_path, tmp_path / "data", model_cls, "straight")
    result = straight.run()
    split = _video_trainer(tmp_path, tmp_path / "data", model_cls, "split")
    split.run(until=3)
    torch.manual_seed(99)
    resumed = _video_trainer(tmp_path, tmp_path / "data", model_cls, "split")
    assert resumed.resume()
    again = resumed.run()
    assert again.step == result.step == 6
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert again.history == result.history and [h["step"] for h in result.history] == [0, 2, 4, 6]
    assert result.history[0]["val"] != result.history[-1]["val"]


def test_validator_measures_delta_psnr(tmp_path) -> None:
    """Clean = compressed + 3 levels: the identity scores exactly 0 dB, a model that adds 1 level back leaves an
    error of 2 levels instead of 3: ΔPSNR = 20·log10(3/2)."""
    lq = _clip(t=4, seed=5)
    gt = lq + 3
    _write_pairs(tmp_path, lq, gt)
    validate = vqe_validator(tmp_path, InputContract(data_range=1.0), torch.device("cpu"))

    class Offset(nn.Module):
        min_input_size, input_multiple = 1, 1

        def __init__(self, offset: float):
            super().__init__()
            self.offset = offset

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.offset

    assert validate(Offset(0.0)) == 0.0
    assert validate(Offset(1 / 255)) == pytest.approx(20 * np.log10(3 / 2), abs=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# the command

def test_train_command_on_a_vqe_entry(tmp_path) -> None:
    """`ntirekit train` on a tiny vqe entry: sizes from --set, staged loss, identity start, validation ΔPSNR, an
    entry folder that loads strictly; `--grow-from` refuses an unrelated checkpoint in one line."""
    from click.testing import CliRunner

    from ntirekit.cli import main
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "entries", "tinyvqe", model_code=TINY_VQE, factory="model.py:TinyVQE", track="vqe",
                task="qe", scale=1, extra_toml="")
    toml = tmp_path / "entries" / "tinyvqe" / "entry.toml"
    toml.write_text(toml.read_text().replace("kwargs = { scale = 1 }", "kwargs = { channels = 4 }"))
    lq = _clip(t=6, seed=6)
    gt = np.clip(lq.astype(int) + 4, 0, 255).astype(np.uint8)
    _write_pairs(tmp_path / "data", lq, gt, qps=[37, 42, 41, 42, 38, 42])
    common = ["--entries", str(tmp_path / "entries"), "--trust", str(tmp_path / "entries"), "--data", str(tmp_path / "data"), "--frames", "3",
              "--patch", "8", "--batch-size", "2", "--steps", "4", "--val-every", "2", "--ckpt-every", "2",
              "--no-progress", "--device", "cpu"]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "tinyvqe", *common, "--val", str(tmp_path / "data"),
                                       "--set", "channels=6", "--then-loss", "l2", "--switch-at", "2",
                                       "--identity-init", "--out", str(out), "--name", "tiny_small",
                                       "--ckpt-dir", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    assert "best validation ΔPSNR" in result.output and "(start: 0.000 dB)" in result.output
    trained = discover([out], include_defaults=False)["tiny_small"]
    assert trained.spec.kwargs["channels"] == 6 and trained.load().body.out_channels == 6
    assert "charbonnier loss, then l2 from step 2" in trained.spec.description

    bad = CliRunner().invoke(main, ["train", "tinyvqe", *common, "--val-limit", "3"])
    assert bad.exit_code != 0 and "--val-limit do not apply" in bad.output
    grow = CliRunner().invoke(main, ["train", "tinyvqe", *common, "--grow-from",
                                     str(out / "tiny_small.pth"), "--ckpt-dir", str(tmp_path / "ckpt2")])
    assert grow.exit_code == 1 and "shapes differ" in grow.output and "Traceback" not in grow.output
    nodata = CliRunner().invoke(main, ["train", "tinyvqe", "--entries", str(tmp_path / "entries"), "--trust", str(tmp_path / "entries")])
    assert nodata.exit_code != 0 and "give --data" in nodata.output


@pytest.mark.skipif(shutil.which("x265") is None or shutil.which("ffmpeg") is None, reason="x265/ffmpeg not installed")
def test_compressed_clips_train_with_their_qp_pqfs(tmp_path) -> None:
    """The folder `ntirekit data compress` writes is training data; the PQFs come from its qp.txt."""
    from ntirekit.data.compress import compress_clip

    clean = tmp_path / "clean"
    write_png_folder(list(_clip(t=6, h=64, w=128, seed=8)), clean)     # x265 hangs on frames below one CTU
    compress_clip(clean, tmp_path / "data", qp=37, preset="ultrafast")
    (clip,) = load_clip_pairs(tmp_path / "data")
    assert clip.lq.shape == (6 - clip.duplicates, 64, 128, 3) and clip.pqf is not None and clip.pqf[0] == 0


def test_image_entries_take_the_staged_loss_and_refuse_video_options(tmp_path) -> None:
    """The options added for video are consistent for image entries: --then-loss/--set work, --frames is refused."""
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.data.images import write_image
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "entries", "tiny")
    write_image(tmp_path / "hr" / "a.png", (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8))
    common = ["--entries", str(tmp_path / "entries"), "--trust", str(tmp_path / "entries"), "--data", str(tmp_path / "hr"), "--val", "none", "--steps", "3",
              "--batch-size", "2", "--patch", "8", "--no-progress", "--device", "cpu"]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "tiny", *common, "--then-loss", "l2", "--switch-at", "2",
                                       "--set", "channels=3", "--out", str(out), "--ckpt-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    trained = discover([out], include_defaults=False)["tiny_trained"]
    assert "l1 loss, then l2 from step 2" in trained.spec.description and trained.spec.kwargs["channels"] == 3
    refused = CliRunner().invoke(main, ["train", "tiny", *common, "--frames", "5"])
    assert refused.exit_code != 0 and "--frames do not apply" in refused.output
