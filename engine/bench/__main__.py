"""Benchmarks: where decoding time goes and which optimisation pays, measured on this machine.

    python -m engine.bench generation [--runs 20] [--warmup 5]   # the seed's V1/V2/V3 table, plus fastest
    python -m engine.bench beam                                  # 30 problems of (2,2), widths 5 and 10
    python -m engine.bench hf                                    # ours vs transformers generate()
    python -m engine.bench sweep                                 # when does a KV cache pay? (+ sweep.html)
    common: [--json] [--checkpoint PATH | --preset tiny|default|paper] [--smoke] [--out DIR]

Each prints a table (unless --json) and then one JSON line: {"suite", "machine", "rows", "summary", ...}.
The result is also written to <out>/<suite>.json (the sweep's chart beside it as sweep.html). With
--preset the weights are random and END is made unreachable, so every configuration generates the same
number of tokens; with a checkpoint (default: the shipped one) answers stop at END.
"""
import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
