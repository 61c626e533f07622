"""Shared building blocks of entries: upsamplers, attention, re-parameterizable blocks, pruning, flow and alignment."""
