"""The module types the NTIRE 2022 counter hooks, and what each module of a network counts as under it.

The official ``utils/model_summary.py`` (NTIRE 2022/2023 ESR repositories) hooks ``nn.Conv2d``/``nn.ConvTranspose2d``
(MACs, activations, #conv), the activation modules ``nn.ReLU``, ``nn.PReLU``, ``nn.ELU``, ``nn.LeakyReLU``,
``nn.ReLU6`` (one MAC per output element), ``nn.BatchNorm2d`` and ``nn.Linear``, subclasses included.
"""

from __future__ import annotations

from torch import nn

CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.ConvTranspose2d)
ACT_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6)
BN_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm2d,)
LINEAR_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,)


def module_kind(module: nn.Module) -> str | None:
    """``"conv"``, ``"act"``, ``"bn"``, ``"linear"`` or None: what ``module`` counts as under the 2022 counter."""
    for kind, types in (("conv", CONV_TYPES), ("act", ACT_TYPES), ("bn", BN_TYPES), ("linear", LINEAR_TYPES)):
        if isinstance(module, types):
            return kind
    return None


def module_kinds(model: nn.Module) -> dict[str, str]:
    """Every module path of ``model`` (``named_modules``, shared modules under each of their names) that counts."""
    kinds: dict[str, str] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        kind = module_kind(module)
        if kind is not None and name:
            kinds[name] = kind
    return kinds
