"""What the suite and the benchmarks both check depthbench with, as `numpy.testing` is for numpy:
`testing.models` (weights that parity with a reference cannot pass by accident; the memory a
real training step holds) and `testing.calibration` (the simulated studies under which the
report's tests are calibrated). Nothing in depthbench imports this package; import names from
its modules.
"""
