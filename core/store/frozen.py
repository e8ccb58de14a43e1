"""A cheaper ``__init__`` for the frozen dataclasses the queue makes on every job.

A frozen dataclass's generated ``__init__`` sets each field with its own
``object.__setattr__`` call (its ``__setattr__`` refuses assignment): for a
:class:`~core.store.queue.JobRow`'s 25 fields that costs more than the rest of decoding
the row, and every job passing through the queue becomes several rows, attempts,
hands and worker rows (bench/queue_throughput.py: about 6 % of the instructions per job). The
``__init__`` :func:`fast_init` gives instead takes the same arguments, with the same
defaults, and sets the instance's ``__dict__`` in one call; everything else about the class
— frozen assignment, equality, hashing, ``repr``, :func:`dataclasses.replace` — is the
dataclass's own.

Only for plain dataclasses: every field in ``__init__``, defaults without factories, no
``__post_init__``, no slots — anything else is refused when the class is defined.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Class decorator, above ``@dataclass(frozen=True)``: see the module docstring."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__slots__") \
            or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init takes a plain dataclass")
    params: list[str] = []
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init takes plain fields")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            defaults[f.name] = f.default
            params.append(f"{f.name}=__defaults[{f.name!r}]")
    names = [f.name for f in dataclasses.fields(cls)]
    source = (f"def __init__(self, {', '.join(params)}):\n"
              f"    __set(self, '__dict__', {{{', '.join(f'{n!r}: {n}' for n in names)}}})\n")
    namespace: dict[str, Any] = {"__set": object.__setattr__, "__defaults": defaults}
    exec(source, namespace)  # noqa: S102 — as dataclasses itself makes __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
