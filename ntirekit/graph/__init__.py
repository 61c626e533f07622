"""Exported graphs: how a network travels from a sandbox to the organizer without any of its code.

In the sandbox, :mod:`ntirekit.graph.export` exports the entry's network with ``torch.export`` and writes it in the
kit's own interchange format (:mod:`ntirekit.graph.format`: JSON naming ATen operators, argument references and
literals, plus raw tensor bytes). In the organizer's process, :mod:`ntirekit.graph.read` vets such a file strictly
and rebuilds an ``fx.GraphModule`` that calls allowlisted ATen operators only (:mod:`ntirekit.graph.ops`); no pickle,
no ``torch.export.load``, no symbolic expression and no name from the file is ever evaluated.
"""
