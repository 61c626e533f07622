"""The trainer: deterministic resume, the SR patch source, losses, and the train/finetune commands end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.core.registry import discover
from ntirekit.train.data import SRPatchSource, augment
from ntirekit.train.loop import TrainConfig, Trainer
from ntirekit.train.losses import charbonnier, get_loss


class _Source:
    """A deterministic toy batch source: the target is a fixed linear map of the input."""

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(rng.standard_normal((4, 3, 6, 7))).float()
        return x, 0.5 * x.flip(1) + 0.1


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2), nn.Conv2d(8, 3, 3, padding=1))


def _run(tmp_path, name: str, until: int | None = None, resume: bool = False) -> Trainer:
    config = TrainConfig(steps=8, lr=1e-2, min_lr=1e-4, val_every=3, ckpt_every=2, seed=5, progress=False)
    fixed = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(9))

    def validate(model: nn.Module) -> float:
        return -float(nn.functional.mse_loss(model(fixed), 0.5 * fixed.flip(1) + 0.1))

    trainer = Trainer(_model(), _Source(), nn.functional.l1_loss, config, validate=validate,
                      ckpt_dir=tmp_path / name)
    if resume:
        assert trainer.resume()
    trainer.result = trainer.run(until=until)
    return trainer


@pytest.mark.slow
def test_resume_gives_the_uninterrupted_result(tmp_path) -> None:
    """Stop after step 3 (checkpoint), resume in a fresh trainer, finish: identical weights, optimiser, RNG, best."""
    straight = _run(tmp_path, "straight")
    first = _run(tmp_path, "split", until=3)
    assert first.step == 3 and not first.result.finished
    torch.manual_seed(1234)          # a fresh process would have other RNG states: the checkpoint restores them
    np.random.seed(1234)
    resumed = _run(tmp_path, "split", resume=True)
    assert resumed.step == straight.step == 8 and resumed.result.finished
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    assert straight.result.history == resumed.result.history
    assert straight.result.best_step == resumed.result.best_step
    assert all(torch.equal(v, resumed.result.best_state[k]) for k, v in straight.result.best_state.items())
    assert straight.result.history[0]["step"] == 0 and [h["step"] for h in straight.result.history] == [0, 3, 6, 8]


def test_resume_refuses_another_configuration(tmp_path) -> None:
    _run(tmp_path, "run", until=2)
    other = Trainer(_model(), _Source(), nn.functional.l1_loss, TrainConfig(steps=9, progress=False),
                    ckpt_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="another configuration"):
        other.resume()


@pytest.mark.slow
def test_training_lowers_the_loss() -> None:
    trainer = Trainer(_model().eval(), _Source(), nn.functional.mse_loss,
                      TrainConfig(steps=40, lr=1e-2, val_every=100, ckpt_every=100, progress=False))
    x, y = _Source().sample(np.random.default_rng(0))
    with torch.no_grad():
        before = float(nn.functional.mse_loss(trainer.model.eval()(x), y))
    trainer.run()
    with torch.no_grad():
        assert float(nn.functional.mse_loss(trainer.model.eval()(x), y)) < before


def test_losses() -> None:
    a, b = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    assert float(get_loss("l1")(a, b)) == pytest.approx(0.5)
    assert float(get_loss("l2")(a, b)) == pytest.approx(0.5)
    assert float(charbonnier(a, b)) == pytest.approx((1e-3 + (1 + 1e-6) ** 0.5) / 2)
    with pytest.raises(ValueError):
        get_loss("l3")


def test_augment_covers_the_dihedral_group() -> None:
    img = np.arange(12).reshape(3, 4)
    outs = {augment(img, k).tobytes() + bytes(augment(img, k).shape) for k in range(8)}
    assert len(outs) == 8


def test_patches_are_aligned_and_augmented_together() -> None:
    """Each LR patch is the bicubic downscale of its HR patch (interior pixels, ±1 for uint8 rounding order)."""
    from ntirekit.data.bicubic import imresize

    rng = np.random.default_rng(0)
    hr = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    hr = np.clip(hr.astype(int) + np.arange(80)[None, :, None], 0, 255).astype(np.uint8)   # not flip-symmetric
    source = SRPatchSource([("img", hr)], 4, lr_patch=8, batch_size=6, data_range=255.0)
    lr, hr_b = source.sample(np.random.default_rng(1))
    assert lr.shape == (6, 3, 8, 8) and hr_b.shape == (6, 3, 32, 32)
    for i in range(6):
        lr_i = lr[i].permute(1, 2, 0).numpy().astype(np.uint8)
        hr_i = hr_b[i].permute(1, 2, 0).numpy().astype(np.uint8)
        down = imresize(hr_i, output_shape=(8, 8))
        assert np.abs(down[2:-2, 2:-2].astype(int) - lr_i[2:-2, 2:-2].astype(int)).max() <= 1


def test_patch_source_scales_to_the_data_range() -> None:
    hr = np.full((32, 32, 3), 255, np.uint8)
    lr, hr_b = SRPatchSource([("w", hr)], 2, lr_patch=4, batch_size=1, data_range=1.0).sample(
        np.random.default_rng(0))
    assert float(lr.max()) == pytest.approx(1.0) and float(hr_b.min()) == pytest.approx(1.0)


@pytest.mark.slow
def test_train_and_finetune_commands(tmp_path) -> None:
    """`ntirekit train` on a tiny entry writes an entry folder that loads strictly; `finetune` continues from it."""
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.data.images import write_image
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "entries", "tiny")
    data = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(data / f"im{i}.png", (rng.random((48, 40, 3)) * 255).astype(np.uint8))
    common = ["--data", str(data), "--val", str(data), "--steps", "4", "--batch-size", "2", "--patch", "8",
              "--val-every", "2", "--ckpt-every", "2", "--no-progress", "--device", "cpu"]
    out = tmp_path / "tiny_trained"
    result = CliRunner().invoke(main, ["train", "tiny", "--entries", str(tmp_path / "entries"), "--trust",
                                       str(tmp_path / "entries"), "--out", str(out),
                                       "--ckpt-dir", str(tmp_path / "ckpt1"), *common])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ckpt1" / "last.pt").is_file()
    trained = discover([out], include_defaults=False)["tiny_trained"]
    trained.load()
    assert "trained by `ntirekit train`" in trained.spec.description
    out2 = tmp_path / "tiny_ft"
    common += ["--ckpt-dir", str(tmp_path / "ckpt2")]
    result = CliRunner().invoke(main, ["finetune", "tiny_trained", "--entries", str(out), "--trust", str(out), "--out", str(out2),
                                       "--loss", "charbonnier", *common])
    assert result.exit_code == 0, result.output
    discover([out2], include_defaults=False)["tiny_trained_ft"].load()
    # Resuming a finished run does no further step and writes the same best weights again.
    result = CliRunner().invoke(main, ["finetune", "tiny_trained", "--entries", str(out), "--trust", str(out), "--out", str(out2),
                                       "--force", "--resume", "--loss", "charbonnier", *common])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output


def test_finetune_needs_weights(tmp_path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "entries", "tiny")
    result = CliRunner().invoke(main, ["finetune", "tiny", "--entries", str(tmp_path / "entries"), "--trust", str(tmp_path / "entries"), "--steps", "1"])
    assert result.exit_code != 0 and "no weights" in result.output


@pytest.mark.gpu
def test_trainer_runs_on_cuda(tmp_path) -> None:
    trainer = Trainer(_model(), _Source(), nn.functional.l1_loss,
                      TrainConfig(steps=3, val_every=2, ckpt_every=2, progress=False), ckpt_dir=tmp_path,
                      device="cuda")
    result = trainer.run()
    assert result.finished and next(trainer.model.parameters()).is_cuda
    resumed = Trainer(_model(), _Source(), nn.functional.l1_loss,
                      TrainConfig(steps=3, val_every=2, ckpt_every=2, progress=False), ckpt_dir=tmp_path,
                      device="cuda")
    assert resumed.resume() and resumed.step == 3


def test_a_kit_trained_entry_is_labelled_by_what_its_weights_are(tmp_path) -> None:
    """`train` writes [weights].origin ("trained (N steps)"); eval shows it instead of "pretrained", while the
    record's `weights` stays "pretrained" for every reader that compares it."""
    from click.testing import CliRunner

    from ntirekit.cli import main
    from ntirekit.cli.eval_cmd import summary_table
    from ntirekit.core.spec import read_spec
    from ntirekit.data.images import write_image
    from ntirekit.eval.runner import run_track
    from ntirekit.eval.track import EvalOptions
    from tests.helpers.entries import write_entry

    write_entry(tmp_path / "entries", "tiny")
    data = tmp_path / "hr"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(data / f"im{i}.png", (rng.random((48, 40, 3)) * 255).astype(np.uint8))
    out = tmp_path / "tiny_trained"
    result = CliRunner().invoke(main, ["train", "tiny", "--entries", str(tmp_path / "entries"), "--trust",
                                       str(tmp_path / "entries"), "--out", str(out),
                                       "--data", str(data), "--val", "none", "--steps", "3", "--batch-size", "2",
                                       "--patch", "8", "--no-progress", "--device", "cpu",
                                       "--ckpt-dir", str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    assert "finished 3 steps" in result.output and "final loss" in result.output
    assert read_spec(out).weights.origin == "trained (3 steps)"
    entry = discover([out], include_defaults=False)["tiny_trained"]
    (rec,) = run_track([entry], EvalOptions(track="psnr", data=str(data), device="cpu", progress=False),
                       isolate=False)
    assert rec["weights"] == "pretrained" and rec["weights_origin"] == "trained (3 steps)"
    row = summary_table([rec], "psnr").splitlines()[2]
    assert row.split()[:4] == ["tiny_trained", "trained", "(3", "steps)"]
