"""depthbench: controlled studies of how depth and attention change image classifiers."""

__version__ = "0.1.0"
