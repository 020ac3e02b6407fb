"""Benchmarks: sybar beside restic, borg and zstd (issue 7). Run: python -m bench --help."""
