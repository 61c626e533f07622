"""Efficiency measurement: params, MACs (two challenge conventions), activations, #conv, runtime, memory, device."""
