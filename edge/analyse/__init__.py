"""Per-track analysers, chosen by the config: what FaceLens judges about each face track.

To add one: a module here with a class that has `info`, `last_latency_ms`, `start()`,
`wants()`, `take()`, `verdict()`, `summary()` and `describe()` (analyse/base.py), and a
`build(cfg) -> list[analyser]` that returns the ones the config switches on (none when it is
off); then one line in ANALYSERS (analyse/registry.py). Events, state, stats, the live page
and Home Assistant discovery carry every analyser under its name.
"""
