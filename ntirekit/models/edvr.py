"""EDVR without mmcv: PCD alignment, TSA fusion, the EDVR network and its feature extractor (IconVSR's refill).

The modules follow mmediting's ``mmedit/models/backbones/sr_backbones/edvr_net.py`` (``ModulatedDCNPack``,
``PCDAlignment``, ``TSAFusion``, ``EDVRNet``) and ``iconvsr.py`` (``EDVRFeatureExtractor``), itself a port of
xinntao/EDVR. Module names equal upstream's (mmcv's ``ConvModule`` keeps its convolution under ``conv``), so an
mmediting checkpoint (``generator.conv_first.*``, ``generator.pcd_alignment.dcn_pack.l3.conv_offset.*``, ...) loads
strictly once ``generator.`` is stripped. The modulated deformable convolutions run through
:func:`ntirekit.nn.deform.modulated_deform_conv2d` (torchvision where its op loads, pure torch otherwise).

Conventions: frames are RGB in [0, 1], a window is ``(N, T, 3, H, W)`` with its reference (centre) frame at
``center_frame_idx``; LeakyReLU slope 0.1 everywhere; offsets are (dy, dx) pairs per kernel tap in pixels.

Forms (``is_low_res_input``):

- ``True`` (x4 VSR, upstream): features at the input size, a x4 pixel-shuffle upsampler, plus the bilinearly
  upsampled centre frame.
- ``False`` (QE, input and output at full size; the kit's addition): the frames are pixel-unshuffled by 4 (space to
  depth, 48 channels at 1/4 size) before ``conv_first``, which is the only layer whose shape changes; everything else
  (pyramid, PCD, TSA, reconstruction, the x4 upsampler back to full size) is the x4 network, and the residual base is
  the centre frame itself. This mirrors BasicVSR++'s QE form (features at 1/4 size, the x4 upsampler restores the
  size) with a parameter-free downsampling instead of two strided convolutions.

Frame sizes: the pyramid halves twice, so the network's input must divide by 4 (x4) or 16 (QE, after unshuffling);
:class:`EDVRNet` reflect-pads the frames at the bottom and right to that multiple and crops the output (upstream asserts
instead; an output is unchanged for sizes that already divide).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ntirekit.nn.deform import ModulatedDeformConv2d, modulated_deform_conv2d
from ntirekit.nn.recurrent import ResidualBlockNoBN, X4Head, check_clip, pad_frames

__all__ = ["ConvModule", "ModulatedDCNPack", "PCDAlignment", "TSAFusion", "EDVRFeatureExtractor", "EDVRNet",
           "generate_frame_indices", "window_indices", "WINDOW_PADDINGS"]

#: Border rules of :func:`generate_frame_indices` (those of BasicSR/mmediting that the kit uses).
WINDOW_PADDINGS = ("reflection_circle", "replicate")


# ---------------------------------------------------------------------------------------------------- clip helpers

def generate_frame_indices(crt_idx: int, num_total: int, num_frames: int,
                           padding: str = "reflection_circle") -> list[int]:
    """The clip frames of the window of ``num_frames`` (odd) frames centred on ``crt_idx`` in a clip of ``num_total``.

    BasicSR/mmediting's rule (``generate_frame_indices``); positions past the clip's ends are replaced by:

    - ``reflection_circle`` (mmediting's EDVR test pipeline on REDS, and IconVSR's refill padding): before the start,
      ``crt_idx + num_frames // 2 - i``; after the end, ``crt_idx - num_frames // 2 - (i - (num_total - 1))``.
      For ``crt_idx = 0`` and 5 frames: ``[4, 3, 0, 1, 2]``. Defined for ``num_total >= num_frames``.
    - ``replicate``: the first or last frame (``[0, 0, 0, 1, 2]``).
    """
    if num_frames < 1 or num_frames % 2 == 0:
        raise ValueError(f"a window has an odd number of frames, got {num_frames}")
    if padding not in WINDOW_PADDINGS:
        raise ValueError(f"window padding must be one of {WINDOW_PADDINGS}, got {padding!r}")
    if not 0 <= crt_idx < num_total:
        raise ValueError(f"frame {crt_idx} lies outside a clip of {num_total} frames")
    if padding == "reflection_circle" and num_total < num_frames:
        raise ValueError(f"reflection_circle needs a clip of at least {num_frames} frames, got {num_total}")
    last, half = num_total - 1, num_frames // 2
    out = []
    for i in range(crt_idx - half, crt_idx + half + 1):
        if i < 0:
            i = 0 if padding == "replicate" else crt_idx + half - i
        elif i > last:
            i = last if padding == "replicate" else crt_idx - half - (i - last)
        out.append(i)
    return out


def window_indices(num_total: int, num_frames: int, padding: str = "reflection_circle") -> list[list[int]]:
    """Per clip frame, the frames of its window; a clip shorter than the window falls back to ``replicate``
    (``reflection_circle`` would reach outside it)."""
    if padding == "reflection_circle" and num_total < num_frames:
        padding = "replicate"
    return [generate_frame_indices(i, num_total, num_frames, padding) for i in range(num_total)]


# ---------------------------------------------------------------------------------------------------- modules

class ConvModule(nn.Module):
    """A convolution and an optional LeakyReLU(0.1), named like mmcv's ``ConvModule`` (keys ``conv.weight``,
    ``conv.bias``; the activation ``activate`` has no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.activate = nn.LeakyReLU(0.1, inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.activate is None else self.activate(x)


class ModulatedDCNPack(ModulatedDeformConv2d):
    """A modulated deformable convolution whose offsets and mask come from another feature (``extra_feat``) through
    ``conv_offset`` (3 x deform_groups x taps channels: dy/dx halves, then the mask logits); ``conv_offset`` starts
    at zero (offsets 0, mask 0.5), as upstream."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 deform_groups: int = 8):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, deform_groups=deform_groups)
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(in_channels, deform_groups * 3 * kh * kw, self.kernel_size, self.stride,
                                     self.padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor, extra_feat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        o1, o2, mask = torch.chunk(self.conv_offset(extra_feat), 3, dim=1)
        return modulated_deform_conv2d(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask), self.weight, self.bias,
                                       self.stride, self.padding, self.dilation, self.deform_groups)


class PCDAlignment(nn.Module):
    """Pyramid, cascading and deformable alignment of a neighbour's features onto the reference's.

    Three levels (``l3`` at 1/4, ``l2`` at 1/2, ``l1`` at full size): at each level the offsets come from the
    concatenated neighbour and reference features (plus the x2-upsampled offset features of the coarser level, scaled
    by 2), a deformable convolution aligns the neighbour, and the result is merged with the upsampled coarser result;
    a final cascading deformable convolution refines the full-size alignment.
    """

    def __init__(self, mid_channels: int = 64, deform_groups: int = 8):
        super().__init__()
        c = mid_channels
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in (3, 2, 1):
            level = f"l{i}"
            self.offset_conv1[level] = ConvModule(2 * c, c, 3, padding=1)
            if i == 3:
                self.offset_conv2[level] = ConvModule(c, c, 3, padding=1)
            else:
                self.offset_conv2[level] = ConvModule(2 * c, c, 3, padding=1)
                self.offset_conv3[level] = ConvModule(c, c, 3, padding=1)
            self.dcn_pack[level] = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
            if i < 3:
                self.feat_conv[level] = ConvModule(2 * c, c, 3, padding=1, act=i == 2)
        self.cas_offset_conv1 = ConvModule(2 * c, c, 3, padding=1)
        self.cas_offset_conv2 = ConvModule(c, c, 3, padding=1)
        self.cas_dcnpack = ModulatedDCNPack(c, c, 3, padding=1, deform_groups=deform_groups)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, neighbor_feats: Sequence[torch.Tensor], ref_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """``neighbor_feats`` and ``ref_feats``: the (L1, L2, L3) features, each (N, C, h, w) at its level's size."""
        if len(neighbor_feats) != 3 or len(ref_feats) != 3:
            raise ValueError("PCD alignment takes three pyramid levels per frame")
        up_offset = up_feat = feat = None
        for i in (3, 2, 1):
            level = f"l{i}"
            offset = self.offset_conv1[level](torch.cat([neighbor_feats[i - 1], ref_feats[i - 1]], dim=1))
            if i == 3:
                offset = self.offset_conv2[level](offset)
            else:
                offset = self.offset_conv3[level](self.offset_conv2[level](torch.cat([offset, up_offset], dim=1)))
            feat = self.dcn_pack[level](neighbor_feats[i - 1], offset)
            feat = self.lrelu(feat) if i == 3 else self.feat_conv[level](torch.cat([feat, up_feat], dim=1))
            if i > 1:
                up_offset = self.upsample(offset) * 2
                up_feat = self.upsample(feat)
        offset = self.cas_offset_conv2(self.cas_offset_conv1(torch.cat([feat, ref_feats[0]], dim=1)))
        return self.lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion of ``num_frames`` aligned features (N, T, C, h, w) -> (N, C, h, w).

    Temporal: each frame is weighted by ``sigmoid(<emb(frame), emb_ref(centre)>)`` per pixel; a 1x1 conv fuses them.
    Spatial: a two-level max/avg-pooled attention pyramid gives a multiplicative (``sigmoid * 2``) and an additive map.
    Pixel sides must divide by 4 for the pooled pyramid to upsample back to the feature size.
    """

    def __init__(self, mid_channels: int = 64, num_frames: int = 5, center_frame_idx: int = 2):
        super().__init__()
        c = mid_channels
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(c, c, 3, padding=1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, padding=1)
        self.feat_fusion = ConvModule(num_frames * c, c, 1)
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.spatial_attn1 = ConvModule(num_frames * c, c, 1)
        self.spatial_attn2 = ConvModule(2 * c, c, 1)
        self.spatial_attn3 = ConvModule(c, c, 3, padding=1)
        self.spatial_attn4 = ConvModule(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, padding=1)
        self.spatial_attn_l1 = ConvModule(c, c, 1)
        self.spatial_attn_l2 = ConvModule(2 * c, c, 3, padding=1)
        self.spatial_attn_l3 = ConvModule(c, c, 3, padding=1)
        self.spatial_attn_add1 = ConvModule(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, aligned_feat: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = aligned_feat.shape
        embedding_ref = self.temporal_attn1(aligned_feat[:, self.center_frame_idx].clone())
        emb = self.temporal_attn2(aligned_feat.reshape(-1, c, h, w)).view(n, t, -1, h, w)
        corr_prob = torch.sigmoid((emb * embedding_ref.unsqueeze(1)).sum(dim=2))  # (N, T, h, w)
        aligned = aligned_feat.reshape(n, -1, h, w) * corr_prob.repeat_interleave(c, dim=1)

        feat = self.feat_fusion(aligned)
        attn = self.spatial_attn1(aligned)
        attn = self.spatial_attn2(torch.cat([self.max_pool(attn), self.avg_pool(attn)], dim=1))
        attn_level = self.spatial_attn_l1(attn)
        attn_level = self.spatial_attn_l2(torch.cat([self.max_pool(attn_level), self.avg_pool(attn_level)], dim=1))
        attn_level = self.upsample(self.spatial_attn_l3(attn_level))
        attn = self.spatial_attn4(self.spatial_attn3(attn) + attn_level)
        attn = self.spatial_attn5(self.upsample(attn))
        attn_add = self.spatial_attn_add2(self.spatial_attn_add1(attn))
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVRFeatureExtractor(nn.Module):
    """EDVR up to the fused feature: per-frame features (``conv_first`` + residual blocks), a three-level pyramid,
    PCD alignment of every window frame onto the centre, TSA (or a 1x1 conv) fusion.

    Alone, it is IconVSR's information-refill extractor (an EDVR-M front end). ``in_channels`` is what ``conv_first``
    sees: 3 for RGB frames, 48 for pixel-unshuffled frames (the QE forms).
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, num_frames: int = 5, deform_groups: int = 8,
                 num_blocks_extraction: int = 5, center_frame_idx: int = 2, with_tsa: bool = True):
        super().__init__()
        if not 0 <= center_frame_idx < num_frames:
            raise ValueError(f"center_frame_idx {center_frame_idx} lies outside a window of {num_frames} frames")
        self.num_frames = num_frames
        self.center_frame_idx = center_frame_idx
        self.with_tsa = with_tsa
        c = mid_channels
        self.conv_first = nn.Conv2d(in_channels, c, 3, 1, 1)
        self.feature_extraction = nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_extraction)))
        self.feat_l2_conv1 = ConvModule(c, c, 3, 2, 1)
        self.feat_l2_conv2 = ConvModule(c, c, 3, 1, 1)
        self.feat_l3_conv1 = ConvModule(c, c, 3, 2, 1)
        self.feat_l3_conv2 = ConvModule(c, c, 3, 1, 1)
        self.pcd_alignment = PCDAlignment(c, deform_groups)
        self.fusion: nn.Module = (TSAFusion(c, num_frames, center_frame_idx) if with_tsa
                                  else nn.Conv2d(num_frames * c, c, 1, 1))
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame (L1, L2, L3) features of frames (M, C_in, h, w); sides must divide by 4."""
        l1 = self.feature_extraction(self.lrelu(self.conv_first(x)))
        l2 = self.feat_l2_conv2(self.feat_l2_conv1(l1))
        l3 = self.feat_l3_conv2(self.feat_l3_conv1(l2))
        return [l1, l2, l3]

    def fuse(self, levels: Sequence[torch.Tensor], window: Sequence[int]) -> torch.Tensor:
        """The fused feature (N, C, h, w) of one window: ``levels`` are (N, T, C, ., .) pyramid levels of a clip and
        ``window`` the ``num_frames`` clip frames of the window (its centre at ``center_frame_idx``)."""
        if len(window) != self.num_frames:
            raise ValueError(f"a window holds {self.num_frames} frames, got {len(window)}")
        ref = [lv[:, window[self.center_frame_idx]] for lv in levels]
        aligned = torch.stack([self.pcd_alignment([lv[:, j] for lv in levels], ref) for j in window], dim=1)
        if self.with_tsa:
            return self.fusion(aligned)
        return self.fusion(aligned.flatten(1, 2))

    def clip_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid of every frame of a clip (N, T, C_in, h, w), as (N, T, C, ., .) per level."""
        n, t = x.shape[:2]
        return [lv.view(n, t, *lv.shape[1:]) for lv in self.pyramid(x.flatten(0, 1))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Window (N, num_frames, C_in, h, w) -> fused feature (N, C, h, w)."""
        return self.fuse(self.clip_pyramid(x), list(range(x.shape[1])))


class EDVRNet(X4Head, EDVRFeatureExtractor):
    """EDVR (video restoration with enhanced deformable convolutions), usable on a whole clip.

    ``forward(lqs)``: clip (N, T, 3, H, W) -> (N, T, 3, H*scale, W*scale). Each output frame is upstream's EDVR output
    for the window of ``num_frames`` frames centred on it, taken with ``window_padding`` at the clip's borders
    (:func:`window_indices`; default ``reflection_circle`` as mmediting's REDS test pipeline, and ``replicate`` for
    clips shorter than the window). The per-frame features are computed once per clip frame rather than once per
    window (they do not depend on the window, so the outputs are the same). ``forward_window`` is upstream's
    ``forward``: window (N, num_frames, 3, H, W) -> centre frame (N, 3, H*scale, W*scale).

    Args:
        mid_channels: feature channels (64 for EDVR-M, 128 for EDVR-L).
        num_frames: window length (5), ``center_frame_idx`` its reference (2).
        deform_groups: deformable groups of the PCD convolutions (8).
        num_blocks_extraction / num_blocks_reconstruction: residual blocks before alignment / after fusion
            (EDVR-M 5 / 10, EDVR-L 5 / 40).
        with_tsa: TSA fusion, else a 1x1 conv over the concatenated aligned features.
        is_low_res_input: True for x4 VSR, False for the full-size QE form (see the module docstring).
        window_padding: ``reflection_circle`` or ``replicate``.
    """

    def __init__(self, mid_channels: int = 64, num_frames: int = 5, deform_groups: int = 8,
                 num_blocks_extraction: int = 5, num_blocks_reconstruction: int = 10, center_frame_idx: int = 2,
                 with_tsa: bool = True, is_low_res_input: bool = True, window_padding: str = "reflection_circle"):
        super().__init__(3 if is_low_res_input else 48, mid_channels, num_frames, deform_groups,
                         num_blocks_extraction, center_frame_idx, with_tsa)
        if window_padding not in WINDOW_PADDINGS:
            raise ValueError(f"window_padding must be one of {WINDOW_PADDINGS}, got {window_padding!r}")
        self.window_padding = window_padding
        self.is_low_res_input = is_low_res_input
        #: output size / input size, fewest frames, smallest side, and the multiple the network pads sides to
        self.scale = 4 if is_low_res_input else 1
        self.min_frames = 1
        self.min_input_size = 4 if is_low_res_input else 16
        self.pad_multiple = 4 if is_low_res_input else 16
        c = mid_channels
        self.reconstruction = nn.Sequential(*(ResidualBlockNoBN(c) for _ in range(num_blocks_reconstruction)))
        self.add_x4_head(c)

    def _restore(self, feat: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        return self.x4_head(self.reconstruction(feat), centre)

    def _run(self, lqs: torch.Tensor, windows: Sequence[Sequence[int]]) -> torch.Tensor:
        h, w = lqs.shape[-2:]
        x = pad_frames(lqs, self.pad_multiple)
        levels = self.clip_pyramid(x if self.is_low_res_input else F.pixel_unshuffle(x, 4))
        outs = [self._restore(self.fuse(levels, win), x[:, win[self.center_frame_idx]]) for win in windows]
        return torch.stack(outs, dim=1)[..., :h * self.scale, :w * self.scale]

    def forward_window(self, x: torch.Tensor) -> torch.Tensor:
        """Upstream's forward: the restored centre frame (N, 3, H*scale, W*scale) of one window."""
        check_clip(x, self.num_frames, self.min_input_size, "EDVR")
        if x.shape[1] != self.num_frames:
            raise ValueError(f"EDVR takes windows of {self.num_frames} frames, got {x.shape[1]}")
        return self._run(x, [list(range(self.num_frames))])[:, 0]

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        """Every frame of a clip (N, T, 3, H, W), each from its sliding window -> (N, T, 3, H*scale, W*scale)."""
        check_clip(lqs, self.min_frames, self.min_input_size, "EDVR")
        return self._run(lqs, window_indices(lqs.shape[1], self.num_frames, self.window_padding))
