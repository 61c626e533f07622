"""Bidirectional recurrent propagation networks: BasicVSR and IconVSR (Chan et al., CVPR 2021), without mmcv.

The networks follow mmediting's ``mmedit/models/backbones/sr_backbones/basicvsr_net.py`` (``BasicVSRNet``) and
``iconvsr.py`` (``IconVSR``): SPyNet flow between neighbouring frames, a backward and a forward propagation branch,
each a residual trunk (``ResidualBlocksWithInputConv``) fed with the current frame and the flow-warped propagated
feature, and a x4 pixel-shuffle reconstruction. IconVSR adds *information refill* (at keyframes, an EDVR-M front end,
:class:`ntirekit.models.edvr.EDVRFeatureExtractor`, computes a feature from a window of 2 * padding + 1 frames, fused into
the propagated feature by ``backward_fusion`` / ``forward_fusion``) and *coupled propagation* (the forward branch
also sees the backward branch's feature). Module names equal upstream's, so mmediting checkpoints load strictly
once ``generator.`` is stripped. Pieces reused: :class:`~ntirekit.nn.spynet.SPyNet`,
:func:`~ntirekit.nn.flow.flow_warp`, and the residual blocks and x4 tail of :mod:`ntirekit.nn.recurrent`.

Conventions: clips are (N, T, 3, H, W), RGB in [0, 1]; flows (N, 2, H, W) in pixels (dx, dy).

Forms (``is_low_res_input``):

- ``True`` (x4 VSR, upstream): the output is 4x the input, plus the bilinearly upsampled input frame.
- ``False`` (QE, input and output at full size; the kit's addition): every frame is pixel-unshuffled by 4 (space to
  depth: 48 channels at 1/4 size), and this tensor takes the place of the low-resolution frame everywhere the x4
  network sees one (the trunks' inputs, IconVSR's refill extractor); SPyNet sees the frames bicubically downsampled
  by 4, as BasicVSR++'s QE form; the x4 upsampler brings the features back to full size, and the residual base is the
  input frame itself. Only the layers that read the frame change shape. Frames must be at least 256x256 (SPyNet then
  sees at least 64x64, the size upstream asserts for x4 inputs).

Differences from upstream that do not change an output: the mirror-extension shortcut (reusing backward flows for a
palindromic training clip) is left out; BasicVSR reflect-pads sides to a multiple of 4 in the QE form (for the
unshuffle), IconVSR to a multiple of 4 (x4, as upstream) or 16 (QE), and the output is cropped back. IconVSR's
refill windows are upstream's (:func:`refill_windows`); clips shorter than a window use ``replicate`` windows
(upstream fails on them). The refill extractor's per-frame features are computed once per clip frame rather than
once per window (they do not depend on the window).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ntirekit.models.edvr import EDVRFeatureExtractor, generate_frame_indices, window_indices
from ntirekit.nn.flow import flow_warp
from ntirekit.nn.recurrent import ResidualBlocksWithInputConv, X4Head, bidirectional_flows, check_clip, pad_frames
from ntirekit.nn.spynet import SPyNet

__all__ = ["BasicVSRNet", "IconVSR", "keyframe_indices", "refill_windows"]


def keyframe_indices(num_frames: int, stride: int = 5) -> list[int]:
    """IconVSR's refill keyframes of a clip: every ``stride``-th frame from frame 0, and always the last frame."""
    if num_frames < 1 or stride < 1:
        raise ValueError(f"need a clip of at least one frame and a stride >= 1, got {num_frames} and {stride}")
    keys = list(range(0, num_frames, stride))
    if keys[-1] != num_frames - 1:
        keys.append(num_frames - 1)
    return keys


def refill_windows(num_frames: int, padding: int = 2) -> list[list[int]]:
    """Per clip frame, the ``2 * padding + 1`` frames of IconVSR's refill window centred on it, as upstream builds
    them: the clip is padded once, before with the frames ``2p, ..., p+1`` and after with ``T-p-2, ..., T-2p-1``
    (``lrs[:, [4, 3]]`` and ``lrs[:, [-4, -5]]`` for ``p = 2``), and frame ``i``'s window is ``padded[i:i + 2p + 1]``.

    The first and last windows equal ``reflection_circle``'s (:func:`ntirekit.models.edvr.generate_frame_indices`), the
    ones next to them do not (frame 1: ``[3, 0, 1, 2, 3]`` here, ``[4, 0, 1, 2, 3]`` there). A clip shorter than a
    window (upstream fails on it) gets ``replicate`` windows.
    """
    size = 2 * padding + 1
    if padding < 1:
        raise ValueError(f"IconVSR's refill padding must be at least 1, got {padding}")
    if num_frames < size:
        return window_indices(num_frames, size, "replicate")
    before = generate_frame_indices(0, num_frames, size, "reflection_circle")[:padding]
    after = generate_frame_indices(num_frames - 1, num_frames, size, "reflection_circle")[padding + 1:]
    padded = [*before, *range(num_frames), *after]
    return [padded[i:i + size] for i in range(num_frames)]


class _Bidirectional(X4Head, nn.Module):
    """What BasicVSR and IconVSR share: the form's geometry, SPyNet flows, the input preparation and the x4
    reconstruction (``upsample1``, ``upsample2``, ``conv_hr``, ``conv_last``)."""

    def __init__(self, mid_channels: int, is_low_res_input: bool, pad_multiple: int):
        super().__init__()
        self.mid_channels = mid_channels
        self.is_low_res_input = is_low_res_input
        #: output size / input size, the fewest frames, the smallest input side, the multiple sides are padded to
        self.scale = 4 if is_low_res_input else 1
        self.min_frames = 2
        self.min_input_size = 64 if is_low_res_input else 256
        self.pad_multiple = pad_multiple
        #: channels of what the network sees in place of a frame (3, or 48 once pixel-unshuffled)
        self.frame_channels = 3 if is_low_res_input else 48
        self.spynet = SPyNet()
        self.add_x4_head(mid_channels)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def compute_flow(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flows_forward, flows_backward)`` (:func:`ntirekit.nn.recurrent.bidirectional_flows`)."""
        return bidirectional_flows(self.spynet, lqs)

    def prepare(self, lqs: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(padded clip, what the trunks see per frame, what SPyNet sees)`` for an input clip."""
        check_clip(lqs, self.min_frames, self.min_input_size, name)
        x = pad_frames(lqs, self.pad_multiple)
        if self.is_low_res_input:
            return x, x, x
        n, t, c, h, w = x.shape
        frames = F.pixel_unshuffle(x.flatten(0, 1), 4).view(n, t, -1, h // 4, w // 4)
        small = F.interpolate(x.flatten(0, 1), scale_factor=0.25, mode="bicubic").view(n, t, c, h // 4, w // 4)
        return x, frames, small


class BasicVSRNet(_Bidirectional):
    """BasicVSR on a clip (N, T, 3, H, W), T >= 2 -> (N, T, 3, H*scale, W*scale).

    Args:
        mid_channels: feature channels (64 upstream).
        num_blocks: residual blocks per propagation branch (30 upstream); 6,291,311 parameters at the defaults
            (SPyNet included).
        is_low_res_input: True for x4 VSR, False for the full-size QE form (see the module docstring).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30, is_low_res_input: bool = True):
        super().__init__(mid_channels, is_low_res_input, pad_multiple=1 if is_low_res_input else 4)
        c = mid_channels
        self.backward_resblocks = ResidualBlocksWithInputConv(c + self.frame_channels, c, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(c + self.frame_channels, c, num_blocks)
        self.fusion = nn.Conv2d(2 * c, c, 1, 1, 0)

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        h, w = lqs.shape[-2:]
        x, frames, small = self.prepare(lqs, "BasicVSR")
        n, t = frames.shape[:2]
        flows_forward, flows_backward = self.compute_flow(small)

        backward: list[torch.Tensor] = [None] * t  # type: ignore[list-item]
        feat_prop = frames.new_zeros(n, self.mid_channels, *frames.shape[-2:])
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat_prop = flow_warp(feat_prop, flows_backward[:, i].permute(0, 2, 3, 1))
            feat_prop = self.backward_resblocks(torch.cat([frames[:, i], feat_prop], dim=1))
            backward[i] = feat_prop

        outputs = []
        feat_prop = torch.zeros_like(feat_prop)
        for i in range(t):
            if i > 0:
                feat_prop = flow_warp(feat_prop, flows_forward[:, i - 1].permute(0, 2, 3, 1))
            feat_prop = self.forward_resblocks(torch.cat([frames[:, i], feat_prop], dim=1))
            out = self.lrelu(self.fusion(torch.cat([backward[i], feat_prop], dim=1)))
            outputs.append(self.x4_head(out, x[:, i]))
        return torch.stack(outputs, dim=1)[..., :h * self.scale, :w * self.scale]


class IconVSR(_Bidirectional):
    """IconVSR on a clip (N, T, 3, H, W), T >= 2 -> (N, T, 3, H*scale, W*scale).

    Args:
        mid_channels: feature channels (64 upstream).
        num_blocks: residual blocks per propagation branch (30 upstream).
        keyframe_stride: refill at every ``keyframe_stride``-th frame and the last (5 upstream).
        padding: the refill window holds ``2 * padding + 1`` frames (2 for REDS, 3 for Vimeo-90K upstream).
        is_low_res_input: True for x4 VSR, False for the full-size QE form (see the module docstring).

    8,694,991 parameters at the defaults (SPyNet and the EDVR-M refill extractor, 2,227,488, included).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 30, keyframe_stride: int = 5, padding: int = 2,
                 is_low_res_input: bool = True):
        super().__init__(mid_channels, is_low_res_input, pad_multiple=4 if is_low_res_input else 16)
        if padding < 1:
            raise ValueError(f"IconVSR's refill padding must be at least 1, got {padding}")
        c = mid_channels
        self.padding = padding
        self.keyframe_stride = keyframe_stride
        self.edvr = EDVRFeatureExtractor(in_channels=self.frame_channels, mid_channels=c, num_frames=2 * padding + 1,
                                         center_frame_idx=padding)
        self.backward_fusion = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.forward_fusion = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.backward_resblocks = ResidualBlocksWithInputConv(c + self.frame_channels, c, num_blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(2 * c + self.frame_channels, c, num_blocks)

    def compute_refill_features(self, frames: torch.Tensor, keyframes: list[int]) -> dict[int, torch.Tensor]:
        """The refill feature of each keyframe, from the window of ``2 * padding + 1`` frames centred on it."""
        windows = refill_windows(frames.shape[1], self.padding)
        levels = self.edvr.clip_pyramid(frames)
        return {k: self.edvr.fuse(levels, windows[k]) for k in keyframes}

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        h, w = lqs.shape[-2:]
        x, frames, small = self.prepare(lqs, "IconVSR")
        n, t = frames.shape[:2]
        keyframes = keyframe_indices(t, self.keyframe_stride)
        flows_forward, flows_backward = self.compute_flow(small)
        refill = self.compute_refill_features(frames, keyframes)

        backward: list[torch.Tensor] = [None] * t  # type: ignore[list-item]
        feat_prop = frames.new_zeros(n, self.mid_channels, *frames.shape[-2:])
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat_prop = flow_warp(feat_prop, flows_backward[:, i].permute(0, 2, 3, 1))
            if i in refill:
                feat_prop = self.backward_fusion(torch.cat([feat_prop, refill[i]], dim=1))
            feat_prop = self.backward_resblocks(torch.cat([frames[:, i], feat_prop], dim=1))
            backward[i] = feat_prop

        outputs = []
        feat_prop = torch.zeros_like(feat_prop)
        for i in range(t):
            if i > 0:
                feat_prop = flow_warp(feat_prop, flows_forward[:, i - 1].permute(0, 2, 3, 1))
            if i in refill:
                feat_prop = self.forward_fusion(torch.cat([feat_prop, refill[i]], dim=1))
            feat_prop = self.forward_resblocks(torch.cat([frames[:, i], backward[i], feat_prop], dim=1))
            outputs.append(self.x4_head(feat_prop, x[:, i]))
        return torch.stack(outputs, dim=1)[..., :h * self.scale, :w * self.scale]
