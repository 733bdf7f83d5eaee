"""Exceptions a user can cause, and the problems that data errors list.

Everything a user can get wrong (a hyperparameter, a data line, a model folder) raises a subclass of
:class:`Object2VecError`, whose message names the place, the value and what was expected. The CLI
prints these messages without a traceback; anything else is a bug.

A data problem is a value, :class:`Problem` (where, which field, what was found, what was expected,
and advice for whoever trains), not a sentence: the data reader finds problems in the records it is
given, and each caller renders them for its own context (``file:line`` for files, ``records[i]``
for Python records, ``instances[i]`` without training advice for an HTTP client), so no caller
ever rewrites another's message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Line:
    """A line of a file (``file:line``), or the file as a whole (``line=None``).

    >>> str(Line("train.jsonl", 3)), str(Line("train.jsonl"))
    ('train.jsonl:3', 'train.jsonl')
    """

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


# Where a problem is: an ``int`` is the index of a record in what the reader was given (rendered as the
# caller names it: ``records[i]``, ``instances[i]``, the caller's own file line); a :class:`Line`; a
# ``str`` names anything else (a parameter, an option); ``None``: the input as a whole.
Location = int | Line | str | None


def record_name(index: int) -> str:
    """How a record given in Python is named by default: ``records[i]``."""
    return f"records[{index}]"


def location_text(location: Location, name: Callable[[int], str] = record_name) -> str:
    """A location in words; ``name`` words a record index.

    >>> location_text(2), location_text(2, "instances[{}]".format), location_text(Line("a.jsonl", 5))
    ('records[2]', 'instances[2]', 'a.jsonl:5')
    """
    if isinstance(location, int):
        return name(location)
    return "" if location is None else str(location)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, kept as values so that each caller words it for its context.

    Rendered as ``location: field: value; expected EXPECTED (HINT)``, each part only when present.
    ``hint`` is advice for whoever trains the model ("raise enc0_vocab_size or re-index"); a client
    of a trained model cannot act on it, so serving renders without it.

    >>> p = Problem(3, "in0", "token 0 is 12, not less than enc0_vocab_size=10", "a token id in [0, 10)",
    ...             "raise enc0_vocab_size or re-index")
    >>> p.render()
    'records[3]: in0: token 0 is 12, not less than enc0_vocab_size=10; expected a token id in [0, 10) (raise enc0_vocab_size or re-index)'
    >>> p.render("instances[{}]".format, advice=False)
    'instances[3]: in0: token 0 is 12, not less than enc0_vocab_size=10; expected a token id in [0, 10)'
    """

    location: Location
    field: str | None
    value: str  # what was found, in words: "token 2 is 12, not less than enc0_vocab_size=10"
    expected: str = ""  # what would have been valid: "a token id in [0, 10)"
    hint: str = ""  # training advice: "raise enc0_vocab_size or re-index"

    def message(self, advice: bool = True) -> str:
        """What is wrong and what was expected, without the location and the field."""
        text = f"{self.value}; expected {self.expected}" if self.expected else self.value
        return f"{text} ({self.hint})" if advice and self.hint else text

    def render(self, name: Callable[[int], str] = record_name, advice: bool = True) -> str:
        """The one line a person reads: ``place: field: message``."""
        head = "".join(f"{part}: " for part in (location_text(self.location, name), self.field) if part)
        return head + self.message(advice)

    def at(self, location: Location) -> Problem:
        """The same problem at another location."""
        return dataclasses.replace(self, location=location)

    @classmethod
    def of(cls, problem: Problem | str) -> Problem:
        """A problem; a plain sentence is a problem with no location or field."""
        return problem if isinstance(problem, Problem) else cls(None, None, problem)


def relocate(problems: Iterable[Problem], places: Sequence[Location]) -> list[Problem]:
    """Problems found in records that a caller built: record ``i`` is at ``places[i]`` in the caller's input.

    >>> relocate([Problem(1, "in0", "empty list")], [Line("a.jsonl", 4), Line("a.jsonl", 7)])[0].render()
    'a.jsonl:7: in0: empty list'
    """
    return [p.at(places[p.location]) if isinstance(p.location, int) and 0 <= p.location < len(places) else p for p in problems]


class Object2VecError(Exception):
    """Base class of every error a user can cause and fix."""


class HyperparameterError(Object2VecError, ValueError):
    """One or more hyperparameters are invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        noun = "hyperparameter" if len(problems) == 1 else "hyperparameters"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} invalid {noun}:\n{lines}")


class DataError(Object2VecError, ValueError):
    """Input records are invalid: ``found`` holds the first few :class:`Problem` values, ``problems``
    their lines as a person reads them (records named ``records[i]``), ``count`` counts them all."""

    def __init__(self, problems: Sequence[Problem | str], count: int | None = None, shown: int = 20):
        self.found = [Problem.of(p) for p in problems]
        self.problems = [p.render() for p in self.found]
        self.count = len(self.found) if count is None else count
        listed = "\n".join(f"  {p}" for p in self.problems[:shown])
        more = "" if self.count <= shown else f"\n  ... and {self.count - shown} more"
        noun = "problem" if self.count == 1 else "problems"
        super().__init__(f"{self.count} data {noun}:\n{listed}{more}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled between ranks: rebuilt from its values
        return (DataError, (self.found, self.count))


class TuningConfigError(Object2VecError, ValueError):
    """A tuning configuration (SageMaker's ``HyperParameterTuningJobConfig``) is invalid; ``problems``
    lists each one, so a user fixes them all in one go."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} tuning configuration {noun}:\n{lines}")


class ModelFormatError(Object2VecError, ValueError):
    """A model folder is missing, incomplete or written by an incompatible version."""


class CheckpointError(Object2VecError, ValueError):
    """A checkpoint cannot be read, or belongs to a different run."""


class NotFittedError(Object2VecError, ValueError, AttributeError):
    """A method that needs a trained model was called before ``fit`` (ValueError and AttributeError,
    as scikit-learn's own ``NotFittedError``)."""


class IndexFormatError(Object2VecError, ValueError):
    """A neighbour index folder is missing, incomplete, damaged or of an unsupported version."""


class UnknownIdError(Object2VecError, LookupError):
    """An item id is not in the index or catalogue it was looked up in."""


class DeviceError(Object2VecError, ValueError):
    """A device that this machine does not have (``cuda`` without a CUDA device, ``cuda:3`` of two)."""


class MissingExtraError(Object2VecError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class Problems:
    """Collects data problems while reading goes on: all are counted, the first ``shown`` in input
    order are kept.

    Input order is by source (files in the order they were read: see :meth:`expect`), then by line
    or record index, so a problem found by a later pass over a file (a schema check after parsing)
    still takes its place among the others. Plain sentences keep the order they were added in.
    """

    def __init__(self, shown: int = 20) -> None:
        self.limit = shown
        self.count = 0
        self._kept: list[tuple[tuple[int, int, int], Problem]] = []
        self._sources: dict[Any, int] = {}

    def expect(self, source: Any) -> None:
        """Declare the next source read (a file path), so its problems come after earlier sources'."""
        self._sources.setdefault(str(source), len(self._sources))

    def add(self, problem: Problem | str) -> None:
        problem = Problem.of(problem)
        self.count += 1
        self._kept.append((self._order(problem), problem))
        if len(self._kept) >= 4 * self.limit:  # forget those that can no longer be among the first
            self._kept.sort(key=_first)
            del self._kept[self.limit :]

    @property
    def shown(self) -> list[Problem]:
        """The first ``shown`` problems, in input order."""
        return [p for _, p in sorted(self._kept, key=_first)[: self.limit]]

    def raise_if_any(self) -> None:
        if self.count:
            raise DataError(self.shown, self.count)

    def _order(self, problem: Problem) -> tuple[int, int, int]:
        loc = problem.location
        source: Any
        if isinstance(loc, Line):
            source, position = loc.file, loc.line or 0
        elif isinstance(loc, int):
            source, position = int, loc  # the records given in Python: one source
        else:
            source, position = loc, 0  # a name, or nothing: in the order added
        rank = self._sources.setdefault(source, len(self._sources))
        return rank, position, self.count


def _first(kept: tuple[tuple[int, int, int], Problem]) -> tuple[int, int, int]:
    return kept[0]
