"""The platform's composition root: the `stories` command, the embedded run and
the benchmarks. The only package allowed to import every service."""
