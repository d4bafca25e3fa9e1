"""The tests' fixtures and helpers live in `tests/support/` (import them from there); this
file only loads its plugin."""

pytest_plugins = ["tests.support.plugin"]
