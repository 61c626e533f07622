"""Structured channel pruning: coupled channel groups (traced), L1 importance, surgery, pruned entries.

- :func:`trace_channels` (:mod:`ntirekit.train.prune.groups`): the coupled channel groups of any ``torch.fx``-traceable
  model (residual adds, gates, concatenations; splits, pixel-shuffle inputs and the model's input/output are kept);
- :func:`prune_model` / :func:`apply_widths` (:mod:`ntirekit.train.prune.prune`): prune groups (by group name or by a
  family's width names such as RLFN's ``trunk``/``mid``) to given widths by L1 importance;
- :func:`prune_entry` (:mod:`ntirekit.train.prune.entry`): the same for an entry, written as a new entry folder.
"""

from ntirekit.train.prune.entry import calibration_inputs, parse_widths, prune_entry, pruned_macs, widths_for_macs_ratio
from ntirekit.train.prune.groups import ChannelGraph, ChannelGroup, TraceError, trace_channels
from ntirekit.train.prune.prune import (CRITERIA, PruneError, WidthSpec, apply_widths, channel_importance, named_groups,
                                        prune_model, select_channels, width_spec_of)

__all__ = ["ChannelGraph", "ChannelGroup", "TraceError", "trace_channels", "CRITERIA", "PruneError", "WidthSpec",
           "apply_widths", "channel_importance", "named_groups", "prune_model", "select_channels", "width_spec_of",
           "prune_entry", "widths_for_macs_ratio", "parse_widths", "pruned_macs", "calibration_inputs"]
