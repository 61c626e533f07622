"""EDVR-M in a QE form (input and output at full size), the kit's own, for compressed-video enhancement.

Choice: the frames are pixel-unshuffled by 4 (48 channels at 1/4 size) before ``conv_first``, the only layer whose
shape changes from the x4 network (3,300,131 + 45 x 64 x 9 = 3,326,051 parameters); the pyramid, PCD alignment,
TSA fusion and reconstruction run at 1/4 size, the x4 upsampler brings the result back to full size and the centre
frame is added as the residual base. This mirrors BasicVSR++'s QE form (features at 1/4 size) with a parameter-free
downsampling instead of two stride-2 convolutions. Sides are reflect-padded to a multiple of 16 inside the model and
the output is cropped back.

Clip interface: ``forward(lqs)`` maps a clip (N, T, 3, H, W) to (N, T, 3, H, W), each output frame restored from the
5-frame window centred on it (``reflection_circle`` at the clip's ends; ``replicate`` for clips under 5 frames).
See :mod:`ntirekit.models.edvr`.
"""

from __future__ import annotations

from ntirekit.models.edvr import EDVRNet

__all__ = ["EDVRNet"]
