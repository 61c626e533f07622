"""Training and fine-tuning video QE entries (BasicVSR++, PQF-BasicVSR++, ...) on compressed/clean clip pairs.

Data (:func:`load_clip_pairs`): any folder the ``vqe`` track reads (:func:`ntirekit.eval.tracks.vqe.find_videos`): the
output of ``ntirekit data compress CLIPS --out DATA`` (each clip's ``clip.json`` names its clean source), or
``DATA/lq/<video>`` + ``DATA/gt/<video>``. Every clip is read once into memory as RGB ``uint8``. Consecutive
byte-identical compressed frames (duplicates) are dropped with their clean frames, as the winner of NTIRE 2022 did,
so no training sequence holds a repeated frame; the PQF positions (from the clip's ``qp.txt``, else the model's own
pattern over the whole clip) are mapped to the frames that stay.

Batches (:class:`ClipSequenceSource`): ``N`` consecutive (unique) frames of one clip, an aligned random ``P x P``
crop of the compressed and the clean frames (the model's frame size rules apply: BasicVSR++ in QE mode needs
``P >= 256`` with SPyNet, ``P >= 32`` with DIS or zero flows, and a multiple of 4), one of the 8 flips/rotations
applied to every frame of both, and, optionally, the
frame order reversed. For a model that takes PQF positions (``default_pqf``, ``forward(lqs, pqf)``) the inputs are
``(clip, pqf)`` with the PQF positions of the sequence in its (possibly reversed) order; the members of one batch are
drawn among the sequences that share the same positions, so one list serves the whole batch. For a model whose flow
source is OpenCV's DIS (``flow = "dis"``) the DIS flows of every compressed clip are computed once and cached
(:func:`dis_flows_cached`, ``flows_dis.npz`` in the clip's folder), cropped, flipped, rotated and reversed with the
frames (:func:`ntirekit.nn.dis_flow.augment_flows`), and passed as the model's ``flows`` input. Candidates are grouped
the same way whether or not the model takes PQFs, so two models trained with one seed see the same crops.

Model (:func:`model_for_video_training`): the entry's factory with ``--set`` overrides, then one of

- random initialisation (seeded), optionally ``identity_init`` (``conv_last`` zeroed: the network starts as the
  identity, output = compressed input, so the validation ΔPSNR starts at 0 dB) and ``zero_flow`` (the last conv of
  every SPyNet level zeroed: flows start at exactly 0; no SPyNet weights are staged with the kit, and upstream starts
  from pretrained SPyNet weights, which cannot be downloaded here);
- the entry's (or ``--weights``) weights (fine-tuning);
- ``grow_from``: the weights of a shallower model of the same family (fewer residual blocks anywhere: reconstruction,
  propagation backbones), the new residual blocks appended with their last convolution zeroed, so the deeper model
  computes exactly what the shallower one did (the winner's progressive growth from 5 to 55 reconstruction blocks).

``fix_flow`` keeps the flow network frozen for the first steps (upstream BasicVSR++: ``fix_iter = 5000``). The loss
compares output and clean frames in [0, 1] (:class:`ntirekit.train.losses.StagedLoss`: e.g. Charbonnier then L2).
Validation (:func:`vqe_validator`) runs each validation clip whole through
:func:`ntirekit.eval.clip_inference.enhance_clip` (duplicates, padding, PQFs as ``ntirekit eval --track vqe`` does) and
returns the mean over videos of ΔPSNR = PSNR(output) - PSNR(compressed input), RGB, peak 255, per-frame mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ntirekit.core.errors import OptionError
from ntirekit.data.video import ClipError, read_clip
from ntirekit.core.spec import Entry, EntryError, InputContract, input_contract
from ntirekit.train.loop import TrainConfig, TrainResult, Trainer, weights_origin
from ntirekit.data.frames import drop_duplicates, find_pqf, positions_after_drop
from ntirekit.eval.tracks.vqe import find_videos
from ntirekit.quality import mean_over_videos, psnr, video_psnr
from ntirekit.eval.clip_inference import enhance_clip
from ntirekit.nn.recurrent import ResidualBlockNoBN
from ntirekit.nn.spynet import SPyNet
from ntirekit.train.image import model_for_training
from ntirekit.core.weights import extract_state_dict, normalise_keys, read_checkpoint
from ntirekit.train.derive import write_entry_folder
from ntirekit.core.device import resolve_device
from ntirekit.train.losses import staged_loss
from ntirekit.nn.deform import ModulatedDeformConv2d
from ntirekit.nn.dis_flow import DIS_PRESET, clip_flows
from ntirekit.nn.dis_flow import augment_flows, reverse_flows

__all__ = ["TrainClip", "load_clip_pairs", "ClipSequenceSource", "augment_sequence", "vqe_validator",
           "grow_from_state", "identity_init", "kaiming_init", "dis_flows_cached", "FLOW_CACHE", "zero_flow", "flow_freezer", "model_for_video_training",
           "VideoTrainOptions", "train_video_entry"]


# ---------------------------------------------------------------------------------------------------------------------
# data

@dataclass
class TrainClip:
    """One training pair in memory: ``lq`` and ``gt`` are ``T x H x W x 3`` RGB ``uint8`` without duplicate frames;
    ``pqf`` are PQF positions in those frames (None: unknown); ``duplicates`` counts the frames dropped."""

    name: str
    lq: np.ndarray
    gt: np.ndarray
    pqf: list[int] | None
    duplicates: int = 0
    #: ``(forward, backward)`` flows of ``lq`` (:func:`ntirekit.nn.dis_flow.clip_flows`, float16), or None
    flows: tuple[np.ndarray, np.ndarray] | None = None


def load_clip_pairs(data: str | os.PathLike, *, default_pqf: Callable[[int], Sequence[int]] | None = None,
                    flows: bool = False) -> list[TrainClip]:
    """The (compressed, clean) pairs of ``data`` in memory, duplicates dropped (module docstring). PQFs come from
    the clip's QPs, else ``default_pqf(n)``, else None. ``flows``: with the DIS flows of the compressed frames
    (:func:`dis_flows_cached`)."""
    clips = []
    for pair in find_videos(data):
        lq = read_clip(pair.lq)
        gt = read_clip(pair.gt).head(pair.gt_frames)
        if len(lq) != len(gt):
            raise ClipError(f"{pair.name}: {len(lq)} compressed frames but {len(gt)} clean frames")
        lq_frames = [np.asarray(f) for f in lq.frames]
        gt_frames = [np.asarray(f) for f in gt.frames]
        if any(a.shape != b.shape for a, b in zip(lq_frames, gt_frames)):
            raise ClipError(f"{pair.name}: compressed and clean frames differ in size (training needs QE pairs)")
        unique, index_map = drop_duplicates(lq_frames)
        keep = [i for i in range(len(index_map)) if i == 0 or index_map[i] != index_map[i - 1]]
        est = find_pqf(len(lq), qps=lq.qps) if lq.qps is not None else None
        pqf: list[int] | None = None
        if est is not None and est.method == "qp":
            pqf = est.positions
        elif default_pqf is not None:
            pqf = list(default_pqf(len(lq)))
        lq_unique = np.stack(unique)
        clips.append(TrainClip(pair.name, lq_unique, np.stack([gt_frames[i] for i in keep]),
                               None if pqf is None else positions_after_drop(pqf, index_map),
                               len(lq_frames) - len(unique),
                               dis_flows_cached(lq_unique, Path(pair.lq)) if flows and len(unique) > 1 else None))
    return clips


#: cache file of a clip's DIS flows, in the compressed clip's folder
FLOW_CACHE = "flows_dis.npz"


def dis_flows_cached(frames: np.ndarray, clip_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The DIS flows (:func:`ntirekit.nn.dis_flow.clip_flows`) of ``frames`` (``T x H x W x 3`` uint8), float16,
    computed once and cached as ``flows_dis.npz`` in the clip's folder (reused when the frames' digest, the DIS
    preset and the shape match; recomputed otherwise; a folder that cannot be written only loses the cache)."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    cache = clip_path / FLOW_CACHE if clip_path.is_dir() else None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["digest"]) == digest and str(z["preset"]) == DIS_PRESET:
                    return z["forward"], z["backward"]
        except (OSError, KeyError, ValueError):
            pass
    forward, backward = (f.astype(np.float16) for f in clip_flows(list(frames)))
    if cache is not None:
        try:
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, forward=forward, backward=backward, digest=digest, preset=DIS_PRESET)
            os.replace(tmp, cache)
        except OSError:
            pass
    return forward, backward


def augment_sequence(frames: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms of every frame of ``T x H x W x C``: horizontal flip if ``k & 1``, then
    ``k >> 1`` quarter turns (the convention of :func:`ntirekit.train.data.augment`)."""
    if k & 1:
        frames = frames[:, :, ::-1]
    return np.rot90(frames, k >> 1, axes=(1, 2))


@dataclass(frozen=True)
class _Candidate:
    clip: int
    start: int
    reverse: bool


class ClipSequenceSource:
    """Random aligned sequences of compressed/clean crops (a batch source for :class:`Trainer`; module docstring).

    ``sample(rng)`` returns ``(inputs, gt)``: ``gt`` and the clip are float32 ``B x N x 3 x P x P`` in
    ``[0, data_range]``; ``inputs`` is the clip, or ``(clip, pqf)`` with ``pass_pqf``.
    """

    def __init__(self, clips: Sequence[TrainClip], frames: int, patch: int, *, batch_size: int = 1,
                 data_range: float = 1.0, augment: bool = True, reverse: bool = True, pass_pqf: bool = False,
                 pass_flows: bool = False):
        if frames < 1 or patch < 1 or batch_size < 1:
            raise OptionError(f"frames, patch and batch size must be positive (got {frames}, {patch}, {batch_size})")
        if pass_flows and any(c.flows is None for c in clips):
            raise OptionError("pass_flows needs the flows of every clip (load_clip_pairs(..., flows=True))")
        self.clips, self.frames, self.patch, self.batch_size = list(clips), int(frames), int(patch), int(batch_size)
        self.data_range, self.augment, self.reverse, self.pass_pqf = float(data_range), augment, reverse, pass_pqf
        self.pass_flows = pass_flows
        groups: dict[tuple[int, ...] | None, list[_Candidate]] = {}
        for c, clip in enumerate(self.clips):
            t, h, w = clip.lq.shape[:3]
            if t < self.frames or min(h, w) < self.patch:
                continue
            for start in range(t - self.frames + 1):
                for rev in ((False, True) if reverse else (False,)):
                    cand = _Candidate(c, start, rev)
                    groups.setdefault(self.pqf_of(cand), []).append(cand)
        if not groups:
            raise ClipError(f"no training clip has {self.frames} unique frames of at least {self.patch}x{self.patch} "
                            "pixels")
        self.groups = list(groups.values())
        sizes = np.array([len(g) for g in self.groups], dtype=np.float64)
        self.group_weights = sizes / sizes.sum()

    def __repr__(self) -> str:
        n = sum(len(g) for g in self.groups)
        used = sorted({cand.clip for g in self.groups for cand in g})
        dups = sum(self.clips[c].duplicates for c in used)
        return (f"ClipSequenceSource({len(used)} clips, {n} sequences of {self.frames} frames "
                f"({'with' if self.reverse else 'without'} reversal), crop {self.patch}, batch {self.batch_size}, "
                f"{dups} duplicate frames dropped)")

    def pqf_of(self, cand: _Candidate) -> tuple[int, ...] | None:
        """PQF positions inside a candidate sequence, in the order the model sees its frames."""
        pqf = self.clips[cand.clip].pqf
        if pqf is None:
            return None
        inside = [p - cand.start for p in pqf if cand.start <= p < cand.start + self.frames]
        return tuple(sorted(self.frames - 1 - p for p in inside) if cand.reverse else inside)

    def sample(self, rng: np.random.Generator) -> tuple[Any, torch.Tensor]:
        group = self.groups[int(rng.choice(len(self.groups), p=self.group_weights))]
        p, n = self.patch, self.frames
        lqs, gts, fwds, bwds = [], [], [], []
        for _ in range(self.batch_size):
            cand = group[int(rng.integers(0, len(group)))]
            clip = self.clips[cand.clip]
            h, w = clip.lq.shape[1:3]
            top, left = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
            index = slice(cand.start, cand.start + n)
            lq = clip.lq[index, top:top + p, left:left + p]
            gt = clip.gt[index, top:top + p, left:left + p]
            k = int(rng.integers(0, 8)) if self.augment else 0
            lq, gt = augment_sequence(lq, k), augment_sequence(gt, k)
            if cand.reverse:
                lq, gt = lq[::-1], gt[::-1]
            lqs.append(np.ascontiguousarray(lq))
            gts.append(np.ascontiguousarray(gt))
            if self.pass_flows:
                assert clip.flows is not None
                pairs = slice(cand.start, cand.start + n - 1)
                fwd, bwd = (augment_flows(f[pairs, top:top + p, left:left + p].astype(np.float32), k)
                            for f in clip.flows)
                if cand.reverse:
                    fwd, bwd = reverse_flows(fwd, bwd)
                fwds.append(np.ascontiguousarray(fwd))
                bwds.append(np.ascontiguousarray(bwd))
        scale = self.data_range / 255.0
        lq_t = torch.from_numpy(np.stack(lqs)).permute(0, 1, 4, 2, 3).float() * scale
        gt_t = torch.from_numpy(np.stack(gts)).permute(0, 1, 4, 2, 3).float() * scale
        inputs: list[Any] = [lq_t]
        if self.pass_pqf:
            pqf = self.pqf_of(group[0])                      # the same for every member of the group
            inputs.append(None if pqf is None else list(pqf))
        if self.pass_flows:
            inputs.append(tuple(torch.from_numpy(np.stack(f)).permute(0, 1, 4, 2, 3) for f in (fwds, bwds)))
        return (tuple(inputs) if len(inputs) > 1 else lq_t), gt_t


# ---------------------------------------------------------------------------------------------------------------------
# validation

def vqe_validator(data: str | os.PathLike, contract: InputContract, device: torch.device, *,
                  frames: int | None = None, protocol: str = "challenge") -> Callable[[nn.Module], float]:
    """``validate(model) -> mean ΔPSNR (dB)`` over the videos of ``data`` (any vqe layout; clips loaded once;
    ``frames``: only the first N of each), each run whole as ``ntirekit eval --track vqe`` runs it, padded to the
    entry's input ``contract`` (:func:`ntirekit.core.spec.input_contract`)."""
    videos = []
    for pair in find_videos(data):
        lq = read_clip(pair.lq).head(frames)
        gt = read_clip(pair.gt).head(pair.gt_frames).head(frames)
        if len(lq) != len(gt):
            raise ClipError(f"{pair.name}: {len(lq)} compressed frames but {len(gt)} clean frames")
        est = find_pqf(len(lq), qps=lq.qps) if lq.qps is not None else None
        pqf = est.positions if est is not None and est.method == "qp" else None
        lq_frames = [np.asarray(f) for f in lq.frames]
        gt_frames = [np.asarray(f) for f in gt.frames]
        input_psnr = video_psnr([psnr(x, y, protocol=protocol, border=0) for x, y in zip(lq_frames, gt_frames)])
        videos.append((lq_frames, gt_frames, pqf, input_psnr))

    def validate(model: nn.Module) -> float:
        deltas = []
        for lq_frames, gt_frames, pqf, input_psnr in videos:
            out, _ = enhance_clip(model, lq_frames, device=device, data_range=contract.data_range, pqf=pqf,
                                  min_size=contract.min_size, pad_to_multiple=contract.multiple)
            deltas.append(video_psnr([psnr(y, ref, protocol=protocol, border=0) for y, ref in zip(out, gt_frames)])
                          - input_psnr)
        return mean_over_videos(deltas)

    return validate


# ---------------------------------------------------------------------------------------------------------------------
# initialisation

def _residual_block_class() -> type:
    return ResidualBlockNoBN


def grow_from_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load a shallower model's ``state`` into ``model`` and make every residual block it lacks an identity.

    Every tensor of ``state`` must exist in ``model`` with the same shape; every tensor of ``model`` missing from
    ``state`` must belong to a residual block (``x + conv2(relu(conv1(x)))``) missing as a whole, whose ``conv2`` is
    then zeroed (``conv1`` keeps its random initialisation, so gradients flow from the first step). Returns the names
    of the new blocks. The grown model's output equals the shallower model's exactly.
    """
    block_class = _residual_block_class()
    own = model.state_dict()
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
              if k in own and state[k].shape != own[k].shape]
    if unexpected or shapes:
        problem = (f"{len(unexpected)} tensors the deeper model lacks ({', '.join(unexpected[:3])})" if unexpected
                   else f"shapes differ ({', '.join(shapes[:3])})")
        raise EntryError(f"cannot grow from a model that is not a shallower version of this one: {problem}")
    new_blocks = [name for name, module in model.named_modules() if isinstance(module, block_class)
                  and not any(f"{name}.{k}" in state for k in module.state_dict())]
    covered = {f"{name}.{k}" for name in new_blocks for k in model.get_submodule(name).state_dict()}
    stray = [k for k in own if k not in state and k not in covered]
    if stray:
        raise EntryError(f"cannot grow: {len(stray)} tensors are missing from the checkpoint outside whole new residual "
                         f"blocks ({', '.join(stray[:3])})")
    model.load_state_dict({**own, **state}, strict=True)
    with torch.no_grad():
        for name in new_blocks:
            conv2 = model.get_submodule(name).conv2
            conv2.weight.zero_()
            if conv2.bias is not None:
                conv2.bias.zero_()
    return new_blocks


def kaiming_init(model: nn.Module) -> int:
    """He (Kaiming) normal initialisation, fan-in, LeakyReLU slope 0.1, zero biases, of every convolution that
    keeps its framework default otherwise: not inside a residual block (those keep their 0.1-scaled init), not a
    zero-initialised one (the alignment's last offset conv), not ``conv_last``. PyTorch's default init shrinks a
    signal by about 1/sqrt(3) per layer, so from scratch (no pretrained weights) the features of a deep recurrent QE
    network start almost constant over the frame and the first hundreds of steps learn nothing; with this init they
    carry the image from step 0. Returns the number of convolutions initialised."""
    block_class = _residual_block_class()
    inside_blocks = {id(m) for b in model.modules() if isinstance(b, block_class) for m in b.modules()}
    last = getattr(model, "conv_last", None)
    done = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (nn.Conv2d, ModulatedDeformConv2d)) or id(module) in inside_blocks \
                    or module is last or not module.weight.any():
                continue
            nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
            if module.bias is not None:
                module.bias.zero_()
            done += 1
    return done


def identity_init(model: nn.Module) -> None:
    """Zero the last convolution (``conv_last``) of a residual QE network: output = input until it learns."""
    conv = getattr(model, "conv_last", None)
    if not isinstance(conv, nn.Conv2d):
        raise EntryError(f"{type(model).__name__} has no conv_last convolution to zero (identity initialisation)")
    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()


def _flow_networks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, SPyNet)]


def zero_flow(model: nn.Module) -> None:
    """Zero the last convolution of every SPyNet level, so every flow starts at exactly 0."""
    nets = _flow_networks(model)
    if not nets:
        raise EntryError(f"{type(model).__name__} has no SPyNet flow network")
    with torch.no_grad():
        for net in nets:
            for level in net.basic_module:
                last = level.basic_module[-1].conv
                last.weight.zero_()
                last.bias.zero_()


def flow_freezer(model: nn.Module, steps: int) -> Callable[[int], None]:
    """A ``before_step`` hook: the flow network's parameters take no gradient before step ``steps``."""
    params = [p for net in _flow_networks(model) for p in net.parameters()]

    def before_step(step: int) -> None:
        for p in params:
            p.requires_grad_(step >= steps)

    return before_step


def model_for_video_training(entry: Entry, *, finetune: bool, weights: str | os.PathLike | None = None,
                             overrides: Mapping[str, Any] | None = None, grow_from: str | os.PathLike | None = None,
                             identity: bool = False, flow_zero: bool = False, kaiming: bool = False,
                             log: Callable[[str], None] | None = None) -> nn.Module:
    """The model to train (module docstring); seed torch first for a reproducible initialisation."""
    log = log or (lambda message: None)
    if (identity or flow_zero or kaiming) and (finetune or grow_from is not None):
        raise OptionError("kaiming, identity and zero-flow initialisations apply to a random initialisation only (`train` "
                         "without --grow-from)")
    if grow_from is not None and weights is not None:
        raise OptionError("give either --grow-from or --weights")
    if grow_from is not None:
        model = entry.build(**dict(overrides or {}))
        state = normalise_keys(extract_state_dict(read_checkpoint(grow_from, "--grow-from"), what="--grow-from"))
        new = grow_from_state(model, state)
        log(f"grown from {grow_from}: {len(new)} new residual blocks, initialised as identities")
        return model
    model = model_for_training(entry, finetune=finetune, weights=weights, overrides=overrides)
    if not finetune:
        if kaiming:
            kaiming_init(model)
        if identity:
            identity_init(model)
        if flow_zero:
            zero_flow(model)
    return model


# ---------------------------------------------------------------------------------------------------------------------
# the entry-level glue

@dataclass
class VideoTrainOptions:
    data: str                              # training pairs (any vqe data layout)
    val: str | None = None                 # validation pairs (any vqe data layout) or None
    val_frames: int | None = None          # validate on the first N frames of each video
    frames: int | None = None              # frames per training sequence (default: the entry's `frames`)
    patch: int = 256                       # crop size (pixels, square)
    batch_size: int = 1
    reverse: bool = True                   # also train on sequences in reverse order
    loss: str = "charbonnier"
    then_loss: str | None = None
    switch_at: float = 0.7
    overrides: dict[str, Any] = field(default_factory=dict)
    grow_from: str | None = None
    identity_init: bool = False
    kaiming_init: bool = False
    zero_flow: bool = False
    fix_flow: int = 0                      # flow network frozen for the first N steps
    device: str = "auto"
    stop_after: int | None = None          # stop after this step as if cut (a checkpoint is written; resume later)
    config: TrainConfig = field(default_factory=TrainConfig)


def train_video_entry(entry: Entry, out_dir: str | os.PathLike | None, options: VideoTrainOptions, *,
                      finetune: bool, weights: str | os.PathLike | None = None,
                      ckpt_dir: str | os.PathLike | None = None, resume: bool = False, name: str | None = None,
                      overwrite: bool = False, log: Callable[[str], None] | None = None
                      ) -> tuple[Entry | None, TrainResult]:
    """Train (seeded random initialisation, or ``grow_from``) or fine-tune a vqe/qe entry on clip pairs; writes the
    best weights (highest validation ΔPSNR; the last ones without validation) as an entry folder at ``out_dir``."""
    if entry.spec.track != "vqe" or entry.spec.task != "qe":
        raise EntryError(f"{entry.name}: video training needs a vqe/qe entry (got {entry.spec.track}/{entry.spec.task})")
    log = log or (lambda message: None)
    device = resolve_device(options.device)
    frames = options.frames or entry.spec.frames
    if frames < 2:
        raise OptionError(f"{entry.name}: training sequences need at least 2 frames (give --frames)")
    torch.manual_seed(options.config.seed)
    model = model_for_video_training(entry, finetune=finetune, weights=weights, overrides=options.overrides,
                                     grow_from=options.grow_from, identity=options.identity_init,
                                     flow_zero=options.zero_flow, kaiming=options.kaiming_init, log=log)
    default_pqf = getattr(model, "default_pqf", None)
    dis = getattr(model, "flow", None) == "dis"
    clips = load_clip_pairs(options.data, default_pqf=default_pqf if callable(default_pqf) else None, flows=dis)
    source = ClipSequenceSource(clips, frames, options.patch, batch_size=options.batch_size,
                                data_range=entry.spec.data_range, reverse=options.reverse,
                                pass_pqf=callable(default_pqf), pass_flows=dis)
    log(f"training data: {source}")
    loss = staged_loss(options.loss, options.then_loss, options.switch_at, options.config.steps,
                       scale=entry.spec.data_range)
    validate = None
    if options.val:
        validate = vqe_validator(options.val, input_contract(entry), device, frames=options.val_frames)
    before_step = flow_freezer(model, options.fix_flow) if options.fix_flow > 0 else None
    trainer = Trainer(model, source, loss, options.config, validate=validate, ckpt_dir=ckpt_dir, device=device,
                      log=log, before_step=before_step)
    if resume and not trainer.resume():
        log("no checkpoint to resume from: starting at step 0")
    result = trainer.run(until=options.stop_after)
    derived = None
    if out_dir is not None and result.finished:
        what = "fine-tuned" if finetune else "trained"
        zeroed = [what for what, on in (("conv_last", options.identity_init), ("SPyNet's last convs",
                                                                             options.zero_flow)) if on]
        init = ("a Kaiming " if options.kaiming_init else "a ") + "random initialisation"
        start = (f"grown from {Path(options.grow_from).name}" if options.grow_from else
                 "from its weights" if finetune else
                 f"from {init}" + (f" ({' and '.join(zeroed)} zeroed)" if zeroed else ""))
        if options.fix_flow:
            start += f", flow network frozen for the first {options.fix_flow} steps,"
        best = (f"best validation ΔPSNR {result.best_metric:+.3f} dB on {options.val} at step {result.best_step}"
                if result.best_metric is not None else f"weights after step {result.step}")
        description = (f"{entry.name} {what} by `ntirekit {'finetune' if finetune else 'train'}` {start} for "
                       f"{options.config.steps} steps on {options.data}: {frames}-frame sequences, {options.patch}px "
                       f"crops, batch {options.batch_size}, {loss.describe()}; {best}.")
        derived = write_entry_folder(entry, out_dir, result.best_state,
                                     name=name or f"{entry.name}_{'ft' if finetune else 'trained'}",
                                     description=description, kwargs=options.overrides, overwrite=overwrite,
                                     origin=weights_origin(what, result, options.config.steps))
    return derived, result
