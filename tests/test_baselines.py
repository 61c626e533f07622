"""The eight ESR baseline entries: discovered with their specs, upstream checkpoints loaded strictly, exact parameter
counts, x4 output shapes, the two RLFN key layouts, clear errors for a wrong checkpoint, and (slow) the published
Set5 Y-PSNR of IMDN and RLFN, which only an exact architecture reproduces.

Expected figures are written out here (upstream checkpoints and papers), independently of the entries' specs.
"""

from __future__ import annotations

import importlib

import re
from pathlib import Path

import pytest
import torch

from ntirekit.core.registry import discover
from ntirekit.core.weights import WeightsError, extract_state_dict, normalise_keys, read_checkpoint, sha256_of
from ntirekit.data.images import open_image_dataset
from ntirekit.eval.inference import upscale_image
from ntirekit.quality import psnr

# name: (parameters, data_range, checkpoint file, upstream repository)
BASELINES: dict[str, tuple[int, float, str, str]] = {
    "imdn_baseline": (893_936, 1.0, "ntire2022_imdn_baseline.pth", "ofsoundof/NTIRE2022_ESR"),
    "imdn": (715_176, 1.0, "IMDN_x4.pth", "Zheng222/IMDN"),
    "rfdn": (433_448, 255.0, "RFDN_AIM.pth", "njulj/RFDN"),
    "rlfn_ntire": (317_218, 255.0, "rlfn_ntire_x4.pth", "bytedance/RLFN"),
    "rlfn": (543_740, 255.0, "rlfn_x4.pth", "bytedance/RLFN"),
    "rlfn_s": (470_208, 255.0, "rlfn_s_x4.pth", "bytedance/RLFN"),
    "efdn": (276_192, 1.0, "ntire2025_team00_EFDN.pth", "Amazingren/NTIRE2025_ESR"),
    "span": (150_688, 1.0, "ntire2026_team00_SPAN.pth", "Amazingren/NTIRE2026_ESR"),
}
TEAM04_RLFN = "ntire2022_team04_rlfn.pth"   # RLFN_cut key names (fea_conv/B1..B4/LR_conv), same tensors
TEAM04_SHA256 = "ca81b7757708ce749ac3766589690db6c2729961d026c0137e7659924ec36622"

NAMES = list(BASELINES)


@pytest.fixture(scope="module")
def registry():  # noqa: ANN201
    return discover()


@pytest.fixture(scope="module")
def loaded(registry, weights_dir: Path):  # noqa: ANN001, ANN201
    """Each baseline with its upstream weights, loaded once per module (the shared data folder holds them)."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = registry[name].load()
        return cache[name]
    return get


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_discovered_with_spec(registry, name: str) -> None:  # noqa: ANN001
    spec = registry[name].spec
    params, data_range, file, repo = BASELINES[name]
    assert (spec.track, spec.task, spec.scale, spec.data_range) == ("esr", "sr", 4, data_range)
    assert spec.published["params"] == params
    w = spec.weights
    assert w is not None and w.file == file and len(w.sha256) == 64
    # pinned upstream URL: https://github.com/<repo>/raw/<40-hex commit>/<path>
    assert re.fullmatch(rf"https://github\.com/{re.escape(repo)}/raw/[0-9a-f]{{40}}/\S+\.pth", w.url), w.url
    module, _, attr = spec.factory.partition(":")                      # a network of ntirekit.models
    assert module.startswith("ntirekit.models.") and hasattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", NAMES)
def test_upstream_weights_load_strictly_with_exact_params(registry, loaded, weights_dir: Path,  # noqa: ANN001
                                                           name: str) -> None:
    entry = registry[name]
    assert entry.weights_path(download=False) == weights_dir / BASELINES[name][2]   # sha256 verified on the way
    model = loaded(name)
    assert n_params(model) == BASELINES[name][0] == entry.spec.published["params"]
    # every tensor of the checkpoint went in: the loaded weights equal the file's, key for key
    w = entry.spec.weights
    state = normalise_keys(extract_state_dict(read_checkpoint(weights_dir / w.file), w.key), w.strip_prefix, w.rename)
    own = model.state_dict()
    assert own.keys() == state.keys()
    assert all(torch.equal(own[k], state[k]) for k in own)


@pytest.mark.parametrize("name", NAMES)
def test_x4_output_on_odd_input(registry, name: str) -> None:  # noqa: ANN001
    model = registry[name].load(pretrained=False)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 27, 19) * registry[name].spec.data_range
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 108, 76)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_deploy_form_has_only_plain_convs(registry, name: str) -> None:  # noqa: ANN001
    """Every parameter lives in an nn.Conv2d or an activation module (PReLU): nothing hides a functional conv."""
    model = registry[name].load(pretrained=False)
    owners = {type(m) for m in model.modules() if any(True for _ in m.parameters(recurse=False))}
    assert owners <= {torch.nn.Conv2d, torch.nn.PReLU}, owners


def test_rlfn_ntire_both_checkpoints_give_identical_outputs(registry, loaded,  # noqa: ANN001
                                                            weights_dir: Path) -> None:
    team04 = weights_dir / TEAM04_RLFN
    assert sha256_of(team04) == TEAM04_SHA256
    entry = registry["rlfn_ntire"]
    a, b = loaded("rlfn_ntire"), entry.load(team04)
    torch.manual_seed(1)
    x = torch.rand(1, 3, 31, 22) * 255.0
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name, wrong", [("rlfn", "RFDN_AIM.pth"), ("span", "rlfn_x4.pth"),
                                         ("imdn", "ntire2022_imdn_baseline.pth"), ("rlfn_s", "rlfn_x4.pth")])
def test_wrong_checkpoint_is_a_one_line_error_naming_the_entry(registry, weights_dir: Path, name: str,
                                                                wrong: str) -> None:  # noqa: ANN001
    with pytest.raises(WeightsError) as info:
        registry[name].load(weights_dir / wrong)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: {wrong} does not fit the model")


# Set5 x4, Y channel (BT.601 studio range, float), 4 px shaved; published in the IMDN and RLFN papers.
SET5_Y_PUBLISHED = {"imdn": 32.21, "rlfn": 32.24}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SET5_Y_PUBLISHED))
def test_set5_y_psnr_matches_the_paper(registry, loaded, set5_dir: Path, name: str) -> None:  # noqa: ANN001
    entry = registry[name]
    dataset = open_image_dataset(set5_dir, scale=4)
    values = [psnr(upscale_image(loaded(name), pair.lr, scale=4, data_range=entry.spec.data_range), pair.hr,
                   protocol="paper", border=4) for pair in dataset]
    assert len(values) == 5
    assert abs(sum(values) / len(values) - SET5_Y_PUBLISHED[name]) < 0.01
