"""Model complexity the NTIRE Efficient SR way: params, FLOPs per convention, activations, #conv, cross-checks.

Three FLOP conventions (see ``CONVENTIONS`` for the exact rules), all counting 1 multiply-add as 1 FLOP:

- ``ntire2023``: the 2022/2023 harness, forward hooks on a few module types;
- ``fvcore``: the 2024+ harness, ``fvcore.nn.FlopCountAnalysis(...).total()``;
- ``full``: fvcore plus what both leave at 0 (elementwise ops, activations, softmax, pooling, reductions).

>>> from sr_bench.complexity import count_complexity
>>> report = count_complexity(model)          # doctest: +SKIP
>>> report.params, report.flops["fvcore"], report.warnings   # doctest: +SKIP
"""

from sr_bench.complexity.counter import CONVENTIONS, ComplexityReport, LayerRow, count_complexity

__all__ = ["CONVENTIONS", "ComplexityReport", "LayerRow", "count_complexity"]
