"""Command-line interface: one small module per command, registered in :mod:`cellprobe.cli.app`."""
