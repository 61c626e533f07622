"""The baselines' published complexity figures, reproduced by the kit's counters (random init: counts need no weights).

Figures from the NTIRE 2022 ESR report (IMDN baseline, RFDN, RLFN), the NTIRE 2024 log (RLFN under fvcore) and the
2025/2026 baselines (EFDN, SPAN), compared rounded to the published number of decimals; params exactly.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ntirekit.core.registry import discover
from ntirekit.measure.counts import Counts, count

# entry: params, 2022-counter GMACs, fvcore GMACs (None: not published), activations [M], #conv
PUBLISHED: dict[str, tuple[int, str | None, str | None, str, int]] = {
    "imdn_baseline": (893_936, "58.53", None, "154.14", 43),
    "rfdn": (433_448, "27.10", None, "112.03", 64),
    "rlfn_ntire": (317_218, "19.70", "19.6749", "80.05", 39),
    "efdn": (276_192, "16.70", None, "111.12", 65),
    "span": (150_688, "9.83", None, "41.68", 22),
}
#: EFDN (2025) and SPAN (2026) were counted with fvcore by the organisers: "FLOPs" means the fvcore figure there.
FVCORE_EDITIONS = {"efdn", "span"}

pytestmark = pytest.mark.slow


def rounded(value: float, published: str) -> str:
    decimals = -Decimal(published).as_tuple().exponent
    return f"{value:.{decimals}f}"


@pytest.fixture(scope="module")
def registry():  # noqa: ANN201
    return discover()


_CACHE: dict[str, Counts] = {}


def counts_of(registry, name: str) -> Counts:  # noqa: ANN001
    if name not in registry:
        pytest.skip(f"baseline {name} not in the tree")
    if name not in _CACHE:
        _CACHE[name] = count(registry[name].load(pretrained=False))
    return _CACHE[name]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_params(registry, name: str) -> None:  # noqa: ANN001
    assert counts_of(registry, name).params == PUBLISHED[name][0]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_flops(registry, name: str) -> None:  # noqa: ANN001
    c = counts_of(registry, name)
    _, g2022, gfv, _, _ = PUBLISHED[name]
    if name in FVCORE_EDITIONS:
        assert c.macs_fvcore is not None
        assert rounded(c.macs_fvcore / 1e9, g2022) == g2022
    else:
        assert rounded(c.macs_ntire2022 / 1e9, g2022) == g2022
    if gfv is not None:
        assert c.macs_fvcore is not None
        assert rounded(c.macs_fvcore / 1e9, gfv) == gfv


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_activations_and_convs(registry, name: str) -> None:  # noqa: ANN001
    c = counts_of(registry, name)
    _, _, _, acts, convs = PUBLISHED[name]
    assert rounded(c.activations / 1e6, acts) == acts
    assert c.convs == convs


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_baselines_count_cleanly(registry, name: str) -> None:  # noqa: ANN001
    """Deploy-form baselines: no functional convolution, and fvcore agrees with torch's counter."""
    c = counts_of(registry, name)
    assert c.functional_convs == 0, c.warnings
    assert c.warnings == []
