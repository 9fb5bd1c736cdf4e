"""Benchmarks (not tests): `make bench`. Each prints ratios side by side, measured in one run."""
