"""BasicVSR++ (x4 VSR and full-size QE forms) and PQF-BasicVSR++, without mmcv.

The network follows mmediting's ``BasicVSRPlusPlus`` (``mmedit/models/backbones/sr_backbones/basicvsr_pp.py``):
SPyNet flow on 1/4-size frames, a feature extractor, four second-order grid-propagation branches (``backward_1``,
``forward_1``, ``backward_2``, ``forward_2``) each with a flow-guided deformable alignment and a residual backbone, and a
reconstruction with two x2 pixel-shuffle upsamplers. Module names equal upstream's, so a checkpoint saved by mmediting
(keys ``generator.spynet.*``, ``generator.feat_extract.*``, ``generator.deform_align.*``, ``generator.backbone.*``,
``generator.reconstruction.*``, ``generator.upsample1/2.*``, ``generator.conv_hr.*``, ``generator.conv_last.*``) loads
strictly once the ``generator.`` prefix is stripped.

Forms:

- ``is_low_res_input=True`` (x4 VSR): features at input size, output 4x; 7,322,927 parameters at the defaults.
- ``is_low_res_input=False`` (QE, the NTIRE 2021/2022 compressed-video form): two stride-2 convolutions bring features
  to 1/4 size, the upsamplers bring them back; output = input size. Frames need sides divisible by 4 and at least 256
  (SPyNet then sees >= 64 pixels, as upstream asserts); without SPyNet (``flow="zero"`` or ``"dis"``) at least 32.

Flow sources (``flow``): ``"spynet"`` (upstream: SPyNet on the frames, on 1/4-size frames in the QE form), ``"zero"``
(no flow network, every flow 0) and ``"dis"`` (the kit's addition: OpenCV's DIS optical flow on the full-size frames,
:mod:`ntirekit.nn.dis_flow`, brought to the feature grid by block means; not learned, so it works without pretrained
SPyNet weights). ``forward(..., flows=(forward, backward))`` takes flows computed beforehand at the frames' size
(``(N, T-1, 2, H, W)`` each, e.g. cached DIS flows of training crops) in place of the flow source's.
``hr_channels`` sets the width of the full-size reconstruction layers (``upsample2``'s output and ``conv_hr``; 64
upstream, where they dominate the cost of the QE form at small ``mid_channels``).

Differences from upstream, none of which changes an output: the mirror-extension shortcut (reusing backward flows for a
palindromic training clip) and the CPU feature cache (``cpu_cache_length``) are left out; long clips are cut into
chunks by :func:`ntirekit.eval.clip_inference.enhance_clip` instead. The alignment always runs (upstream skipped it when
mmcv's CUDA op was missing; here the deformable convolution has a pure-torch path).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ntirekit.data.frames import pqf_positions
from ntirekit.nn.deform import SecondOrderDeformableAlignment
from ntirekit.nn.flow import chain_flows, flow_warp
from ntirekit.nn.propagation_steps import Step, plan
from ntirekit.nn.recurrent import ResidualBlocksWithInputConv, X4Head, bidirectional_flows, check_clip
from ntirekit.nn.spynet import SPyNet
from ntirekit.nn.dis_flow import downscale_flow
from ntirekit.nn.dis_flow import tensor_clip_flows

__all__ = ["BasicVSRPlusPlus", "PQFBasicVSRPlusPlus", "BRANCHES", "FLOW_SOURCES"]

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")
FLOW_SOURCES = ("spynet", "zero", "dis")
Flows = tuple[torch.Tensor, torch.Tensor]


class BasicVSRPlusPlus(X4Head, nn.Module):
    """BasicVSR++ on a clip ``(N, T, 3, H, W)`` of RGB frames in [0, 1] (``T >= 2``).

    Args:
        mid_channels: feature channels (64 upstream).
        num_blocks: residual blocks per propagation branch (7 upstream).
        max_residue_magnitude: bound of the offset residue (10 upstream).
        is_low_res_input: True for x4 VSR, False for the full-size QE form.
        num_blocks_reconstruction: residual blocks of the reconstruction (5 upstream; PQF-BasicVSR++ grows it to 55).
        flow: ``"spynet"`` (upstream), ``"zero"``: no flow network, every flow exactly 0 (alignment then rests on
            the learned deformable offsets alone; the form of a model trained with a frozen, zeroed SPyNet), or
            ``"dis"``: OpenCV's DIS optical flow (module docstring).
        hr_channels: width of the full-size reconstruction layers (64 upstream).
        hr_blocks: residual blocks at full size after ``conv_hr`` (none upstream).
        hr_frame_input: ``conv_hr`` also sees the input frame (not upstream; see :meth:`X4Head.add_x4_head`).
        deform_groups: offset groups of the deformable alignments (16 upstream; their offset convolutions, with
            27 outputs per group, are most of a step's cost at small ``mid_channels``).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 7, max_residue_magnitude: float = 10,
                 is_low_res_input: bool = True, num_blocks_reconstruction: int = 5, flow: str = "spynet",
                 hr_channels: int = 64, deform_groups: int = 16, hr_blocks: int = 0, hr_frame_input: bool = False):
        super().__init__()
        if flow not in FLOW_SOURCES:
            raise ValueError(f"flow must be one of {', '.join(map(repr, FLOW_SOURCES))}, got {flow!r}")
        self.mid_channels = mid_channels
        self.is_low_res_input = is_low_res_input
        self.flow = flow
        #: output size / input size, the fewest frames, the smallest input side and the multiple input sides must be
        self.scale = 4 if is_low_res_input else 1
        self.min_frames = 2
        self.min_input_size = 64 if is_low_res_input else 256 if flow == "spynet" else 32
        self.input_multiple = 1 if is_low_res_input else 4
        #: the feature grid is this many times coarser than the frames
        self.feature_stride = 1 if is_low_res_input else 4

        self.spynet = SPyNet() if flow == "spynet" else None
        if is_low_res_input:
            self.feat_extract: nn.Module = ResidualBlocksWithInputConv(3, mid_channels, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, mid_channels, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(mid_channels, mid_channels, 3, 2, 1), nn.LeakyReLU(0.1, inplace=True),
                ResidualBlocksWithInputConv(mid_channels, mid_channels, 5))

        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(BRANCHES):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                2 * mid_channels, mid_channels, 3, padding=1, deform_groups=deform_groups,
                max_residue_magnitude=max_residue_magnitude)
            self.backbone[name] = ResidualBlocksWithInputConv((2 + i) * mid_channels, mid_channels, num_blocks)

        self.reconstruction = ResidualBlocksWithInputConv(5 * mid_channels, mid_channels, num_blocks_reconstruction)
        self.add_x4_head(mid_channels, hr_channels, hr_blocks, hr_frame_input)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    # ------------------------------------------------------------------------------------------------------------------
    def check_input(self, lqs: torch.Tensor) -> None:
        """Raise a one-line ``ValueError`` unless ``lqs`` is a clip this form takes (no padding is done here)."""
        check_clip(lqs, self.min_frames, self.min_input_size, "BasicVSR++")
        h, w = lqs.shape[-2:]
        if h % self.input_multiple or w % self.input_multiple:
            raise ValueError(f"frame sides must be multiples of {self.input_multiple}, got {w}x{h} (pad the frames)")

    def compute_flow(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flows_forward, flows_backward)``, each (N, T-1, 2, h, w) at the flow resolution
        (:func:`ntirekit.nn.recurrent.bidirectional_flows`); zeros without a flow network (``flow="zero"``; the
        ``"dis"`` flows are made from the full-size frames in :meth:`feature_flows`)."""
        if self.spynet is None:
            n, t, _, h, w = lqs.shape
            zeros = lqs.new_zeros(n, t - 1, 2, h, w)
            return zeros, zeros
        return bidirectional_flows(self.spynet, lqs)

    def propagation_plan(self, t: int, direction: str, pqf: Iterable[int] | None = None) -> list[Step]:
        """The propagation steps of one direction (BasicVSR++: the second-order neighbour is two steps back)."""
        return plan(t, direction)

    @staticmethod
    def step_flows(flows_forward: torch.Tensor, flows_backward: torch.Tensor, steps: Sequence[Step],
                   direction: str) -> list[torch.Tensor | None]:
        """Per step ``s >= 1``, the flow (N, 2, h, w) that warps step ``s-1`` onto step ``s`` (None at step 0)."""
        out: list[torch.Tensor | None] = [None]
        for step in steps[1:]:
            # forward: frame f from f-1 is flows_forward[f-1]; backward: frame f from f+1 is flows_backward[f]
            out.append(flows_forward[:, step.frame - 1] if direction == "forward" else flows_backward[:, step.frame])
        return out

    def propagate(self, feats: dict[str, list[torch.Tensor]], flows: list[torch.Tensor | None],
                  steps: Sequence[Step], name: str) -> list[torch.Tensor]:
        """One propagation branch; returns its features in frame order."""
        spatial = feats["spatial"]
        earlier = [feats[k] for k in feats if k != "spatial"]  # branches already run, in BRANCHES order
        align = self.deform_align[name]
        by_step: list[torch.Tensor] = []
        feat_prop = spatial[0].new_zeros(spatial[0].shape)
        for step in steps:
            feat_current = spatial[step.frame]
            if step.step > 0:
                flow_n1 = flows[step.step]
                assert flow_n1 is not None
                cond_n1 = flow_warp(feat_prop, flow_n1.permute(0, 2, 3, 1))
                if step.second_order is None:
                    feat_n2 = torch.zeros_like(feat_prop)
                    flow_n2 = torch.zeros_like(flow_n1)
                    cond_n2 = torch.zeros_like(cond_n1)
                else:
                    feat_n2 = by_step[step.second_order]
                    flow_n2 = chain_flows([flows[s] for s in step.flow_chain])  # type: ignore[misc]
                    cond_n2 = flow_warp(feat_n2, flow_n2.permute(0, 2, 3, 1))
                cond = torch.cat([cond_n1, feat_current, cond_n2], dim=1)
                feat_prop = align(torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1, flow_n2)
            feat = torch.cat([feat_current, *(branch[step.frame] for branch in earlier), feat_prop], dim=1)
            feat_prop = feat_prop + self.backbone[name](feat)
            by_step.append(feat_prop)
        in_frame_order: list[torch.Tensor] = [None] * len(steps)  # type: ignore[list-item]
        for step, f in zip(steps, by_step):
            in_frame_order[step.frame] = f
        return in_frame_order

    def upsample(self, lqs: torch.Tensor, feats: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        outputs = []
        for i in range(lqs.shape[1]):
            hr = torch.cat([feats["spatial"][i], *(feats[k][i] for k in BRANCHES)], dim=1)
            outputs.append(self.x4_head(self.reconstruction(hr), lqs[:, i]))
        return torch.stack(outputs, dim=1)

    def feature_flows(self, lqs: torch.Tensor, flows: Flows | None = None) -> Flows:
        """``(flows_forward, flows_backward)`` on the feature grid: from ``flows`` (given at the frames' size), else
        from the flow source (module docstring)."""
        n, t, c, h, w = lqs.shape
        if flows is None and self.flow == "dis":
            flows = tensor_clip_flows(lqs)
        if flows is not None:
            expected = (n, t - 1, 2, h, w)
            if any(tuple(f.shape) != expected for f in flows):
                raise ValueError(f"flows {[tuple(f.shape) for f in flows]} do not fit the clip: expected {expected}")
            return downscale_flow(flows[0], self.feature_stride), downscale_flow(flows[1], self.feature_stride)
        if self.is_low_res_input:
            return self.compute_flow(lqs)
        lqs_flow = F.interpolate(lqs.reshape(-1, c, h, w), scale_factor=0.25, mode="bicubic")
        return self.compute_flow(lqs_flow.view(n, t, c, h // 4, w // 4))

    def features(self, lqs: torch.Tensor, pqf: Iterable[int] | None = None,
                 flows: Flows | None = None) -> dict[str, list[torch.Tensor]]:
        """Per-frame features: ``spatial`` (the extractor's) and one list per propagation branch, in frame order."""
        self.check_input(lqs)
        n, t, c, h, w = lqs.shape
        feats_ = self.feat_extract(lqs.reshape(-1, c, h, w))
        feats_ = feats_.view(n, t, *feats_.shape[1:])
        feats: dict[str, list[torch.Tensor]] = {"spatial": [feats_[:, i] for i in range(t)]}
        flows_forward, flows_backward = self.feature_flows(lqs, flows)
        pqf = None if pqf is None else list(pqf)
        for name in BRANCHES:
            direction = name.split("_")[0]
            steps = self.propagation_plan(t, direction, pqf)
            flows = self.step_flows(flows_forward, flows_backward, steps, direction)
            feats[name] = self.propagate(feats, flows, steps, name)
        return feats

    def run(self, lqs: torch.Tensor, pqf: Iterable[int] | None = None, flows: Flows | None = None) -> torch.Tensor:
        return self.upsample(lqs, self.features(lqs, pqf, flows))

    def forward(self, lqs: torch.Tensor, flows: Flows | None = None) -> torch.Tensor:
        """Output clip (N, T, 3, H*scale, W*scale) for the input clip (N, T, 3, H, W); ``flows``: see the module
        docstring."""
        return self.run(lqs, flows=flows)


class PQFBasicVSRPlusPlus(BasicVSRPlusPlus):
    """PQF-BasicVSR++ (NTIRE 2022 VQE winner): BasicVSR++ whose second-order neighbour is the most recent
    peak-quality frame (see :mod:`ntirekit.nn.propagation_steps`), with a deeper reconstruction.

    ``forward(lqs, pqf=None)``: ``pqf`` lists the PQF frame indices of this clip (e.g. from the clip's QPs); without
    it every ``period``-th frame from frame 0 is a PQF (the pattern "1000 1000 ..." for ``period=4``).
    """

    def __init__(self, mid_channels: int = 64, num_blocks: int = 7, max_residue_magnitude: float = 10,
                 is_low_res_input: bool = False, num_blocks_reconstruction: int = 55, period: int = 4,
                 flow: str = "spynet", hr_channels: int = 64, deform_groups: int = 16, hr_blocks: int = 0,
                 hr_frame_input: bool = False):
        super().__init__(mid_channels, num_blocks, max_residue_magnitude, is_low_res_input, num_blocks_reconstruction,
                         flow, hr_channels, deform_groups, hr_blocks, hr_frame_input)
        if period < 1:
            raise ValueError(f"PQF period must be at least 1, got {period}")
        self.period = period

    def default_pqf(self, n: int) -> list[int]:
        """The PQF frames assumed for a clip of ``n`` frames when none are given."""
        return pqf_positions(n, period=self.period)

    def propagation_plan(self, t: int, direction: str, pqf: Iterable[int] | None = None) -> list[Step]:
        return plan(t, direction, self.default_pqf(t) if pqf is None else pqf)

    def forward(self, lqs: torch.Tensor, pqf: Sequence[int] | None = None,  # type: ignore[override]
                flows: Flows | None = None) -> torch.Tensor:
        return self.run(lqs, pqf, flows)
