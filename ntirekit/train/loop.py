"""The training loop, generic over a batch source and a loss (image SR now; video entries reuse it with a clip source).

- a **batch source** has ``sample(rng: numpy.random.Generator) -> (inputs, targets)``; every random draw it makes
  comes from ``rng``, which the trainer owns and checkpoints;
- ``inputs`` is what the model takes: a tensor (``model(inputs)``) or a tuple of positional arguments
  (``model(*inputs)``, e.g. a clip and its PQF positions);
- a **loss** is ``loss(model(inputs), targets) -> scalar tensor``; a loss with a ``set_step(step)`` method
  (:class:`ntirekit.train.losses.StagedLoss`) is told the number of steps already taken before every step;
- a **before_step** callable (optional) is called the same way, e.g. to freeze a sub-network for the first steps;
- a **validate** callable (optional) maps the model (in eval mode, under ``no_grad``) to a number, higher is better
  (validation PSNR); the best weights are kept.

Optimiser: Adam; schedule: cosine annealing from ``lr`` to ``min_lr`` over ``steps``. Checkpoints (``last.pt`` in
``ckpt_dir``, written atomically every ``ckpt_every`` steps and at the end) hold the model, optimiser, scheduler,
the sampler's and torch's RNG states, the step, the best weights and the history; :meth:`Trainer.resume` continues from
one, and a resumed run ends with bit-identical weights to an uninterrupted one on the same device and thread count.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from ntirekit.core.errors import OptionError

__all__ = ["BatchSource", "TrainConfig", "TrainResult", "Trainer", "CHECKPOINT"]

CHECKPOINT = "last.pt"


class BatchSource(Protocol):
    def sample(self, rng: np.random.Generator) -> tuple[Any, Any]: ...


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 5e-4
    min_lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    val_every: int = 100
    ckpt_every: int = 100
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    step: int
    best_metric: float | None
    best_step: int | None
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = False


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class Trainer:
    """Train ``model`` on batches from ``source`` (see the module docstring)."""

    def __init__(self, model: nn.Module, source: BatchSource, loss: Callable[[Any, Any], torch.Tensor],
                 config: TrainConfig, *, validate: Callable[[nn.Module], float] | None = None,
                 ckpt_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 log: Callable[[str], None] | None = None, before_step: Callable[[int], None] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.source, self.loss, self.config, self.validate = source, loss, config, validate
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        self.log = log or (lambda message: None)
        self.before_step = before_step
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, config.steps),
                                                                    eta_min=config.min_lr)
        self.rng = np.random.Generator(np.random.PCG64(config.seed))
        torch.manual_seed(config.seed)
        self.step = 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] = _cpu_state(self.model)
        self.history: list[dict[str, float]] = []
        self.running_loss: float | None = None    # exponential moving average shown and logged

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "config": asdict(self.config),
            "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_sampler": self.rng.bit_generator.state,
            "rng_torch": torch.get_rng_state(),
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "best_state": self.best_state,
            "history": self.history,
            "running_loss": self.running_loss,
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ours = {k: v for k, v in asdict(self.config).items() if k != "progress"}
        theirs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items() if k != "progress"}
        if ours != theirs:
            diff = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
            raise OptionError(f"checkpoint was written with another configuration (checkpoint, now): {diff}")
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["rng_sampler"]
        torch.set_rng_state(state["rng_torch"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])
        self.best_metric, self.best_step = state["best_metric"], state["best_step"]
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.running_loss = state["running_loss"]

    def save_checkpoint(self) -> Path | None:
        if self.ckpt_dir is None:
            return None
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / CHECKPOINT
        fd, tmp = tempfile.mkstemp(dir=self.ckpt_dir, prefix=".last.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default ``ckpt_dir/last.pt``) if it exists; returns whether a checkpoint was loaded."""
        path = Path(path) if path is not None else (self.ckpt_dir / CHECKPOINT if self.ckpt_dir else None)
        if path is None or not path.is_file():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.log(f"resumed from {path} at step {self.step}")
        return True

    # -- the loop ------------------------------------------------------------------------------------------------------
    def _validate(self) -> float | None:
        if self.validate is None:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                metric = float(self.validate(self.model))
        finally:
            self.model.train(was_training)
        if self.best_metric is None or metric > self.best_metric:
            self.best_metric, self.best_step = metric, self.step
            self.best_state = _cpu_state(self.model)
        return metric

    def run(self, until: int | None = None) -> TrainResult:
        """Train to ``config.steps`` (or stop after step ``until``, as if interrupted; a checkpoint is written)."""
        from tqdm import tqdm

        cfg = self.config
        stop = cfg.steps if until is None else min(until, cfg.steps)
        if self.step == 0 and self.validate is not None and not self.history:
            metric = self._validate()
            self.history.append({"step": 0, "val": metric})
            self.log(f"step 0: validation {metric:.4f}")
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress, unit="step", dynamic_ncols=True)
        try:
            while self.step < stop:
                if hasattr(self.loss, "set_step"):
                    self.loss.set_step(self.step)
                if self.before_step is not None:
                    self.before_step(self.step)
                inputs, targets = _to_device(self.source.sample(self.rng), self.device)
                self.optimizer.zero_grad(set_to_none=True)
                output = self.model(*inputs) if isinstance(inputs, tuple) else self.model(inputs)
                loss = self.loss(output, targets)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at step {self.step + 1}")
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                value = float(loss.detach())
                running = value if self.running_loss is None else 0.9 * self.running_loss + 0.1 * value
                self.running_loss = running
                bar.update(1)
                last_val = next((h["val"] for h in reversed(self.history) if h.get("val") is not None), None)
                bar.set_postfix(loss=f"{running:.4g}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                val=("-" if last_val is None else f"{last_val:.3f}"),
                                best=("-" if self.best_metric is None else f"{self.best_metric:.3f}"))
                entry: dict[str, float] = {}
                if (self.step % cfg.val_every == 0 or self.step == cfg.steps) and self.validate is not None:
                    entry = {"step": self.step, "loss": running, "val": self._validate(),
                             "lr": self.scheduler.get_last_lr()[0]}
                    self.history.append(entry)
                    self.log(f"step {self.step}: loss {running:.5g}, validation {entry['val']:.4f}")
                if self.step % cfg.ckpt_every == 0 or self.step == stop:
                    self.save_checkpoint()
        finally:
            bar.close()
        finished = self.step >= cfg.steps
        if finished and self.validate is None:
            self.best_state, self.best_step = _cpu_state(self.model), self.step
        return TrainResult(self.step, self.best_metric, self.best_step, copy.deepcopy(self.best_state),
                           list(self.history), finished)
