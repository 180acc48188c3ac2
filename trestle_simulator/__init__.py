"""A Trestle-compatible HTTP server with generated data, for tests, benchmarks and the demo.

It is a separate peer of the pipeline and imports nothing from it: sharing code would let
the client and the simulator agree on a mistake.
"""
