"""Quality metrics: PSNR/SSIM under the ``challenge`` (RGB) and ``paper`` (Y) protocols, the harness's tensor
conversions, and per-video aggregation. See :mod:`ntirekit.quality.metrics` for the exact definitions.
"""

from ntirekit.quality.aggregate import mean_over_videos, video_psnr
from ntirekit.quality.convert import to_model_input, to_uint8_output
from ntirekit.quality.metrics import PROTOCOLS, mse, psnr, rgb_to_y, ssim

__all__ = ["PROTOCOLS", "rgb_to_y", "mse", "psnr", "ssim", "to_model_input", "to_uint8_output", "video_psnr",
           "mean_over_videos"]
