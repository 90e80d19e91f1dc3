"""depthbench performance benchmarks: `python -m benchmarks [--only NAME] [--quick]`.

Each `bench_*.py` / `roofline.py` / `memory.py` module offers `main(argv) -> int` and prints one or
more Markdown sections on stdout; `python -m benchmarks` runs them all in turn.
"""
