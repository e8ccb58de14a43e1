"""Rows made through fast_init's ``__init__`` are what the dataclass's own would make."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from core.store.frozen import fast_init
from core.store.queue import AttemptRow, InHand, JobRow, NewJob, WorkerRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class _Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


@fast_init
@dataclasses.dataclass(frozen=True)
class _Fast:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


@pytest.mark.parametrize("cls", [AttemptRow, InHand, JobRow, NewJob, WorkerRow])
def test_the_signature_is_the_dataclass_one(cls: type) -> None:
    params = [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]
    fields = [(f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING
               else f.default) for f in dataclasses.fields(cls)]
    assert params == fields


def test_an_instance_is_what_the_dataclass_makes() -> None:
    for args, kwargs in [((1,), {}), ((1, "x"), {"c": (2,)}), ((), {"a": 3, "b": "y"})]:
        fast, plain = _Fast(*args, **kwargs), _Plain(*args, **kwargs)
        assert vars(fast) == vars(plain)
    made = _Fast(1)
    assert made == _Fast(1) and hash(made) == hash(_Fast(1)) and made != _Fast(2)
    assert repr(made) == "_Fast(a=1, b='b', c=())"
    assert dataclasses.replace(made, b="z") == _Fast(1, "z")
    assert copy.deepcopy(InHand(1, 2, NOW)) == InHand(1, 2, NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "b", (), 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, d=4)  # type: ignore[call-arg]


def test_defaults_are_the_dataclass_ones() -> None:
    assert _Fast(1).c == _Plain(1).c == ()
    assert JobRow(*([None] * 24)).history == ()


def test_what_it_cannot_copy_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None: ...

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slots:
        a: int

    class NotADataclass:
        pass

    for cls in (Factory, PostInit, Slots, NotADataclass):
        with pytest.raises(TypeError):
            fast_init(cls)
