"""Named training recipes (``ntirekit train ENTRY --preset NAME``): option values and model settings in one place.

A preset fills every ``train``/``finetune`` option the command line leaves at its default; an option given on the
command line wins, and so does a ``--set KEY=VALUE`` over the preset's model setting of the same key.

``cpu-small`` (video QE entries of the BasicVSR++ family, ``basicvsrpp`` / ``pqf_basicvsrpp``): a model sized to
learn on one (shared) CPU core in under an hour. 16 feature channels, 2 residual blocks per propagation branch, 4 in
the reconstruction, a full-size tail of 16 channels (``hr_channels``; upstream's 64 there cost most of a step) that
also sees the input frame (``hr_frame_input``) with 2 residual blocks (``hr_blocks``): with 16 channels the 1/4-size
features cannot carry a frame's fine detail (48 pixel values per feature position), and without the frame in the
tail a pilot stayed at ΔPSNR 0 for 1000 steps. 4 deformable offset groups (upstream 16: the offset convolutions
dominate a step), flows from OpenCV's DIS (``flow = "dis"``: no pretrained SPyNet is needed; computed once per
training clip and cached), 64x64 crops of 6-frame sequences, batch 8, 2000 steps, He-normal init outside the
residual blocks (``kaiming_init``: from scratch, PyTorch's default init leaves the features nearly constant over the
frame) with ``conv_last`` zeroed (``identity_init``: ΔPSNR starts at 0), Adam with a cosine schedule from 1e-3 (3e-3
diverged in a pilot), Charbonnier loss for the first 30 % of the steps then L2 (the NTIRE 2022 VQE winner's order;
L2 is what PSNR measures), one thread, validation every 200 steps, a checkpoint every 25 steps (``--resume``
continues a cut run exactly). ``benchmarks/vqe_train_step.py`` times a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["Preset", "PRESETS", "get_preset", "apply_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    #: ``train`` options by their parameter names (``batch_size``, ``then_loss``, ...)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: model settings (``--set``)
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: tracks the preset applies to
    tracks: tuple[str, ...] = ("vqe",)


PRESETS: dict[str, Preset] = {
    "cpu-small": Preset(
        "cpu-small",
        "small BasicVSR++ / PQF-BasicVSR++ with DIS flows, trained on one CPU core (ntirekit.train.presets)",
        options={"frames": 6, "patch": 64, "batch_size": 8, "steps": 2000, "lr": 1e-3, "min_lr": 1e-6,
                 "loss": "charbonnier", "then_loss": "l2", "switch_at": 0.3, "identity_init": True,
                 "kaiming_init": True, "val_every": 200, "ckpt_every": 25, "threads": 1, "device": "cpu"},
        settings={"mid_channels": 16, "num_blocks": 2, "num_blocks_reconstruction": 4, "hr_channels": 16,
                  "hr_blocks": 2, "hr_frame_input": True, "deform_groups": 4, "flow": "dis"}),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None


def apply_preset(preset: Preset, options: dict[str, Any], is_default: Callable[[str], bool],
                 settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options, settings)`` with the preset's values wherever ``is_default(name)`` says the option was not
    given, and the preset's model settings under the given ``settings``."""
    merged = dict(options)
    for key, value in preset.options.items():
        if key not in merged:
            raise ValueError(f"preset {preset.name}: unknown option {key!r}")
        if is_default(key):
            merged[key] = value
    return merged, {**preset.settings, **settings}
