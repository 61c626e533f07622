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
``ckpt_dir``) hold the model, optimiser, scheduler, the sampler's and torch's RNG states, the step, the best weights and
the history; beside each, ``best.pt`` holds the best weights so far as a plain state dict (highest validation; the
latest weights without a validation). Both are written atomically every ``ckpt_every`` steps, at least every
``save_every_s`` seconds of wall time whatever the number of steps, at the end, and when the run is stopped: SIGINT
(Ctrl-C) or SIGTERM ends the run after the step under way, with both files written (a second Ctrl-C stops at once,
without them). :meth:`Trainer.resume` continues from ``last.pt``, and a resumed run ends with bit-identical weights to
an uninterrupted one on the same device and thread count (the schedule of the saves does not change the training).
With ``log``, the run says its pace and ETA after its first steps and at every timed save.
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from ntirekit.core.errors import OptionError
from ntirekit.core.weights import atomic_torch_save

__all__ = ["BatchSource", "TrainConfig", "TrainResult", "Trainer", "CHECKPOINT", "BEST_WEIGHTS", "weights_origin"]

CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"
#: config fields that do not change what is trained (a checkpoint resumes under other values)
_RUN_ONLY = ("progress", "save_every_s")


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
    #: a checkpoint and the best weights at least this often [s of wall time]
    save_every_s: float = 120.0


@dataclass
class TrainResult:
    step: int
    best_metric: float | None
    best_step: int | None
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = False
    #: the running loss (exponential moving average, 0.9) after the last step; None before any step
    final_loss: float | None = None
    #: wall time of this run's steps [s] and how many it took (a resumed run: since the resume)
    seconds: float = 0.0
    steps_run: int = 0
    #: the signal that stopped the run ("SIGINT", "SIGTERM"), or None
    stopped_by: str | None = None


class _StopRequests:
    """While active (main thread only), SIGINT and SIGTERM ask the loop to stop after the step under way; a second
    SIGINT raises KeyboardInterrupt at once."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        self.log(f"{self.signal}: stopping after the step under way, then writing the checkpoint and the best "
                 "weights (Ctrl-C again stops at once, without them)")

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


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
        self.saved_at = time.monotonic()          # when the last checkpoint was written (or the run began)

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
        ours = {k: v for k, v in asdict(self.config).items() if k not in _RUN_ONLY}
        theirs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()
                  if k not in _RUN_ONLY}
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

    def _save_atomic(self, obj: Any, name: str) -> Path:
        assert self.ckpt_dir is not None
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        return atomic_torch_save(obj, self.ckpt_dir / name)

    def best_weights(self) -> dict[str, torch.Tensor]:
        """The best weights so far: the best validated ones, or the latest without a validation."""
        return self.best_state if self.validate is not None else _cpu_state(self.model)

    def save_checkpoint(self) -> Path | None:
        """Write ``last.pt`` (resumable) and ``best.pt`` (the best weights so far, a plain state dict) in
        ``ckpt_dir``; returns the checkpoint's path (None without a ``ckpt_dir``)."""
        if self.ckpt_dir is None:
            return None
        path = self._save_atomic(self.state_dict(), CHECKPOINT)
        self._save_atomic(self.best_weights(), BEST_WEIGHTS)
        self.saved_at = time.monotonic()
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
        """Train to ``config.steps`` (or stop after step ``until``, as if interrupted; a checkpoint is written).
        SIGINT/SIGTERM stop it the same way after the step under way (``stopped_by`` says which)."""
        from tqdm import tqdm

        cfg = self.config
        stop = cfg.steps if until is None else min(until, cfg.steps)
        if self.step == 0 and self.validate is not None and not self.history:
            metric = self._validate()
            self.history.append({"step": 0, "val": metric})
            self.log(f"step 0: validation {metric:.4f}")
        self.model.train()
        first, started = self.step, time.monotonic()
        self.saved_at = started
        pace_told = False
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not cfg.progress, unit="step", dynamic_ncols=True)
        try:
            with _StopRequests(self.log) as stop_requests:
                while self.step < stop and stop_requests.signal is None:
                    self._one_step(bar)
                    done = self.step - first
                    if not pace_told and (done >= 3 or time.monotonic() - started >= 10) and self.step < stop:
                        self.log(self._pace(first, started, stop))
                        pace_told = True
                    due = time.monotonic() - self.saved_at >= cfg.save_every_s
                    if self.step % cfg.ckpt_every == 0 or self.step == stop or due:
                        self.save_checkpoint()
                        if due and self.step < stop:
                            self.log(self._pace(first, started, stop)
                                     + (f"; saved in {self.ckpt_dir}" if self.ckpt_dir is not None else ""))
                stopped_by = stop_requests.signal if self.step < stop else None     # a signal in the last step: done
                if stopped_by is not None:
                    self.save_checkpoint()
        finally:
            bar.close()
        finished = self.step >= cfg.steps
        if finished and self.validate is None:
            self.best_state, self.best_step = _cpu_state(self.model), self.step
        return TrainResult(self.step, self.best_metric, self.best_step, copy.deepcopy(self.best_state),
                           list(self.history), finished, self.running_loss, time.monotonic() - started,
                           self.step - first, stopped_by)

    def _pace(self, first: int, started: float, stop: int) -> str:
        """``step 3/200: 16.1 s per step, about 53 min to go``."""
        per_step = (time.monotonic() - started) / max(1, self.step - first)
        left = per_step * (stop - self.step)
        eta = f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f} s"
        return (f"step {self.step}/{stop}: {per_step:.2f} s per step, about {eta} to go (checkpoint and best weights "
                f"every {self.config.save_every_s / 60:g} min of wall time; Ctrl-C saves them and stops)")

    def _one_step(self, bar: Any) -> None:
        cfg = self.config
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
        if (self.step % cfg.val_every == 0 or self.step == cfg.steps) and self.validate is not None:
            entry = {"step": self.step, "loss": running, "val": self._validate(),
                     "lr": self.scheduler.get_last_lr()[0]}
            self.history.append(entry)
            self.log(f"step {self.step}: loss {running:.5g}, validation {entry['val']:.4f}")


def weights_origin(what: str, result: TrainResult, steps: int) -> str:
    """The weights label of a kit-trained entry (``[weights].origin``): ``trained (50 steps)``, or ``fine-tuned (step
    40 of 50)`` when the best validation came before the last step."""
    best = result.best_step if result.best_step is not None else result.step
    return f"{what} ({steps} steps)" if best == steps else f"{what} (step {best} of {steps})"
