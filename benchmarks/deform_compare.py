#!/usr/bin/env python
"""torchvision's compiled ``deform_conv2d`` against the kit's pure-torch modulated deformable convolution.

On one BasicVSR++-shaped layer (second-order alignment: ``C`` channels in and out, 3x3, ``deform_groups`` 16, random
offsets of a few pixels and sigmoid masks), both implementations of
:func:`ntirekit.nn.deform.modulated_deform_conv2d` run on the same tensors: the largest difference (float64, and
float32 relative to the output's scale) and the runtime of each (the kit's robust timer: warm-up, repeats, median),
side by side. Where torchvision's op does not load (the CPU wheel of this project's torch), only the pure-torch
implementation is timed and that is said.

    .venv/bin/python benchmarks/deform_compare.py --device cuda                 # 64 channels, 180x320
    .venv/bin/python benchmarks/deform_compare.py --size 24x32 --channels 16    # a quick CPU run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ntirekit.core.device import resolve_device
from ntirekit.measure.runtime import headline, time_robust
from ntirekit.nn.deform import modulated_deform_conv2d, torchvision_available


def _case(channels: int, h: int, w: int, groups: int, dtype: torch.dtype, device: torch.device) -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, h, w, generator=g, dtype=dtype)
    offset = 3 * torch.randn(1, 2 * groups * 9, h, w, generator=g, dtype=dtype)
    mask = torch.sigmoid(torch.randn(1, groups * 9, h, w, generator=g, dtype=dtype))
    weight = torch.randn(channels, channels, 3, 3, generator=g, dtype=dtype) / (3 * channels ** 0.5)
    bias = torch.randn(channels, generator=g, dtype=dtype)
    return tuple(t.to(device) for t in (x, offset, mask, weight, bias))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", default="180x320", help="HxW of the feature map")
    parser.add_argument("--deform-groups", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    h, w = (int(v) for v in args.size.lower().split("x"))
    impls = ["torch"] + (["torchvision"] if torchvision_available(device) else [])
    out: dict = {"device": str(device), "size": [h, w], "channels": args.channels, "implementations": impls}
    if len(impls) == 1:
        print(f"torchvision's deform_conv2d does not load on {device.type} here: timing the pure-torch one only")
    for dtype in (torch.float64, torch.float32):
        case = _case(args.channels, h, w, args.deform_groups, dtype, device)
        with torch.inference_mode():
            outs = {impl: modulated_deform_conv2d(*case, 1, 1, 1, args.deform_groups, impl=impl) for impl in impls}
        if "torchvision" in outs:
            diff = (outs["torchvision"] - outs["torch"]).abs().max().item()
            scale = outs["torch"].abs().max().item()
            out[f"max_abs_diff_{str(dtype)[6:]}"] = diff
            print(f"{str(dtype)[6:]}: max |torchvision - torch| = {diff:.3g} (output scale {scale:.3g}, "
                  f"relative {diff / max(scale, 1e-30):.3g})")
    case = _case(args.channels, h, w, args.deform_groups, torch.float32, device)
    models = {impl: (lambda x, _i=impl: modulated_deform_conv2d(x, *case[1:], 1, 1, 1, args.deform_groups,
                                                                impl=_i)) for impl in impls}
    stats = time_robust(models, [case[0]], warmup=args.warmup, repeats=args.repeats, device=device)
    out["runtime_ms"] = {impl: headline(s) for impl, s in stats.items()}
    print(f"float32 1x{args.channels}x{h}x{w}, deform groups {args.deform_groups}, device {device}: "
          + ", ".join(f"{impl} {ms:.2f} ms" for impl, ms in out["runtime_ms"].items())
          + (f"; pure torch / torchvision = {out['runtime_ms']['torch'] / out['runtime_ms']['torchvision']:.2f}x"
             if "torchvision" in stats else ""))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
