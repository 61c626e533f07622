"""IconVSR in a QE form (input and output at full size), the kit's own, for compressed-video enhancement.

Choice: every frame is pixel-unshuffled by 4 (48 channels at 1/4 size) and takes the place of the LR frame wherever
the x4 network reads one (the propagation trunks' input convs and the refill extractor's ``conv_first``); SPyNet runs
on the frames bicubically downsampled by 4 (as BasicVSR++'s QE form); the x4 upsampler brings the features back to
full size and the input frame is added as the residual base. Frames >= 256x256; sides are reflect-padded to a
multiple of 16 inside the model (the refill's PCD pyramid halves the 1/4-size features twice) and the output is
cropped back. 8,772,751 parameters. See :mod:`ntirekit.models.basicvsr`.
"""

from __future__ import annotations

from ntirekit.models.basicvsr import IconVSR

__all__ = ["IconVSR"]
