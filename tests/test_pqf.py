"""PQF propagation: the index rule on the pattern "1000 1000 ..." (expected indices written out), flow chains, and
PQF-BasicVSR++ against an independently indexed reference."""

from __future__ import annotations

import pytest
import torch
from helpers.basicvsrpp_ref import one_thread  # noqa: F401  (fixture)
from helpers.basicvsrpp_ref import CheapFlow, randomise_offsets, reference_features

from ntirekit.models.basicvsrpp import BasicVSRPlusPlus, PQFBasicVSRPlusPlus
from ntirekit.nn.propagation_steps import plan, pqf_steps, propagation_order, second_order_keys

pytestmark = pytest.mark.usefixtures("one_thread")

PATTERN_10 = [0, 4, 8]   # "1000 1000 10" over 10 frames


def test_propagation_order():
    assert propagation_order(5, "forward") == [0, 1, 2, 3, 4]
    assert propagation_order(5, "backward") == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError):
        propagation_order(5, "sideways")


def test_forward_keys_on_1000_pattern():
    # step:                                   0     1     2  3  4  5  6  7  8  9
    assert second_order_keys(10, "forward", PATTERN_10) == [None, None, 0, 0, 0, 0, 4, 4, 4, 4]
    steps = plan(10, "forward", PATTERN_10)
    assert [s.frame for s in steps] == list(range(10))
    assert [s.first_order for s in steps] == [None, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert [s.second_order_frame for s in steps] == [None, None, 0, 0, 0, 0, 4, 4, 4, 4]
    assert steps[0].flow_chain == () and steps[1].flow_chain == ()     # step 0: nothing; step 1: first order only
    assert steps[2].flow_chain == (1, 2)
    assert steps[5].flow_chain == (1, 2, 3, 4, 5)
    assert steps[6].flow_chain == (5, 6)
    assert steps[9].flow_chain == (5, 6, 7, 8, 9)


def test_backward_keys_on_1000_pattern():
    # backward visits frames 9, 8, ..., 0: the PQFs 8, 4, 0 are steps 1, 5, 9
    assert pqf_steps(10, "backward", PATTERN_10) == [1, 5, 9]
    # step:                                    0     1     2  3  4  5  6  7  8  9
    assert second_order_keys(10, "backward", PATTERN_10) == [None, None, 0, 1, 1, 1, 1, 5, 5, 5]
    steps = plan(10, "backward", PATTERN_10)
    assert [s.frame for s in steps] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    # step 2 has no PQF among steps 0..0: falls back to i-2 (frame 9)
    assert [s.second_order_frame for s in steps] == [None, None, 9, 8, 8, 8, 8, 4, 4, 4]
    assert steps[2].flow_chain == (1, 2)
    assert steps[6].flow_chain == (2, 3, 4, 5, 6)
    assert steps[9].flow_chain == (6, 7, 8, 9)


def test_fall_back_to_two_steps_back():
    # 8 frames, PQFs 0 and 4: backward meets frame 4 at step 3 and frame 0 at step 7
    assert second_order_keys(8, "backward", [0, 4]) == [None, None, 0, 1, 2, 3, 3, 3]
    assert second_order_keys(8, "forward", [0, 4]) == [None, None, 0, 0, 0, 0, 4, 4]
    # no PQF at all, or no PQF info: plain BasicVSR++
    assert second_order_keys(6, "forward", []) == [None, None, 0, 1, 2, 3]
    assert second_order_keys(6, "backward", None) == [None, None, 0, 1, 2, 3]
    # every frame a PQF: the most recent one is always i-2
    assert second_order_keys(6, "backward", range(6)) == [None, None, 0, 1, 2, 3]
    assert [s.flow_chain for s in plan(4, "forward")] == [(), (), (1, 2), (2, 3)]


def test_short_clips_and_bad_positions():
    assert second_order_keys(1, "forward", [0]) == [None]
    assert second_order_keys(2, "backward", [0]) == [None, None]
    with pytest.raises(ValueError):
        second_order_keys(4, "forward", [4])


TINY = dict(mid_channels=16, num_blocks=1, num_blocks_reconstruction=2)


def _pair(seed=0):
    """A PQF model and a plain BasicVSR++ with the same weights (cheap flows, random offsets)."""
    torch.manual_seed(seed)
    pqf = PQFBasicVSRPlusPlus(**TINY, period=4).eval()
    randomise_offsets(pqf, scale=0.05, seed=seed + 1)
    pqf.spynet = CheapFlow(seed)
    plain = BasicVSRPlusPlus(**TINY, is_low_res_input=False).eval()
    plain.spynet = CheapFlow(seed)
    plain.load_state_dict(pqf.state_dict())
    return pqf, plain


def _key_by_scanning(pqf_frames):
    """The rule restated: scan the branch's frames two or more steps back, latest first, for a PQF."""
    def key_of(direction, i, t):
        order = list(range(t)) if direction == "forward" else list(range(t - 1, -1, -1))
        for k in range(i - 2, -1, -1):
            if order[k] in pqf_frames:
                return k
        return i - 2
    return key_of


@pytest.mark.slow
def test_pqf_features_match_reference():
    pqf, _ = _pair()
    x = torch.rand(1, 7, 3, 256, 256)
    positions = [1, 5]            # not the default pattern: the given positions must be the ones used
    with torch.no_grad():
        feats = pqf.features(x, positions)
        ref = reference_features(pqf, x, key_of=_key_by_scanning(set(positions)))
    for name in ref:
        for i, (a, b) in enumerate(zip(feats[name], ref[name], strict=True)):
            assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item()), (name, i)


@pytest.mark.slow
def test_pqf_defaults_and_reduction_to_basicvsrpp():
    pqf, plain = _pair(seed=3)
    x = torch.rand(1, 6, 3, 256, 256)
    with torch.no_grad():
        default = pqf.features(x)
        explicit = pqf.features(x, [0, 4])                  # period 4 from frame 0
        every = pqf.features(x, range(6))                   # every frame a PQF: key always i-2
        base = plain.features(x)
    assert pqf.default_pqf(6) == [0, 4]
    for name in base:
        for a, b, c, d in zip(default[name], explicit[name], every[name], base[name]):
            assert torch.equal(a, b)
            assert torch.equal(c, d)
    # with PQFs the second-order neighbours differ from BasicVSR++'s, and so do the features
    assert not torch.allclose(default["forward_1"][5], base["forward_1"][5])
