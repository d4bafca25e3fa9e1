"""The Lua scripts of the stores, each a `.lua` file beside this module (`scripts/`)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def source(name: str) -> str:
    """The text of `scripts/<name>.lua`."""
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text()
