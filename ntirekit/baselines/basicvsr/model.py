"""BasicVSR in a QE form (input and output at full size), the kit's own, for compressed-video enhancement.

Choice: every frame is pixel-unshuffled by 4 (48 channels at 1/4 size) and takes the place of the LR frame in the
x4 network (the propagation trunks' input convs read 64 + 48 channels instead of 64 + 3); SPyNet runs on the frames
bicubically downsampled by 4 (as BasicVSR++'s QE form); the x4 upsampler brings the features back to full size and
the input frame is added as the residual base. Features therefore live at 1/4 size, as in BasicVSR++'s QE form, but
the downsampling is parameter-free (pixel unshuffle) instead of two stride-2 convolutions. Frames >= 256x256, sides
padded to a multiple of 4 inside the model. 6,343,151 parameters. See :mod:`ntirekit.models.basicvsr`.
"""

from __future__ import annotations

from ntirekit.models.basicvsr import BasicVSRNet

__all__ = ["BasicVSRNet"]
