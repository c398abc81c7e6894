"""Benchmark: the encoder × dataset matrix runner, its statistics, the report and the embedded demo."""
