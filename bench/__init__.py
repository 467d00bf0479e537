"""Benchmarks run by `make bench`; results land in bench/results/ and the README summarises them."""
