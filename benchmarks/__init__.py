"""congruence benchmark suite: ``python -m benchmarks [--quick|--smoke] [--cases P1,P2]``.

Each case runs congruence and its pure-PyTorch baseline in the same process, interleaved, and
writes JSON, a markdown table and a PNG plot under ``benchmarks/results/``.
"""
