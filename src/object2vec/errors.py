"""Exceptions a user can cause.

Everything a user can get wrong (a hyperparameter, a data line, a model folder) raises a subclass of
:class:`Object2VecError`, whose message names the place, the value and what was expected. The CLI
prints these messages without a traceback; anything else is a bug.
"""

from __future__ import annotations


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
    """Input records are invalid; ``problems`` lists the first few, ``count`` counts them all."""

    def __init__(self, problems: list[str], count: int | None = None, shown: int = 20):
        self.problems = list(problems)
        self.count = len(problems) if count is None else count
        listed = "\n".join(f"  {p}" for p in self.problems[:shown])
        more = "" if self.count <= shown else f"\n  ... and {self.count - shown} more"
        noun = "problem" if self.count == 1 else "problems"
        super().__init__(f"{self.count} data {noun}:\n{listed}{more}")


class ModelFormatError(Object2VecError, ValueError):
    """A model folder is missing, incomplete or written by an incompatible version."""


class CheckpointError(Object2VecError, ValueError):
    """A checkpoint cannot be read, or belongs to a different run."""


class NotFittedError(Object2VecError, RuntimeError):
    """A method that needs a trained model was called before ``fit``."""


class IndexFormatError(Object2VecError, ValueError):
    """A neighbour index folder is missing, incomplete, damaged or of an unsupported version."""


class UnknownIdError(Object2VecError, LookupError):
    """An item id is not in the index or catalogue it was looked up in."""


class DeviceError(Object2VecError, ValueError):
    """A device that this machine does not have (``cuda`` without a CUDA device, ``cuda:3`` of two)."""


class MissingExtraError(Object2VecError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class Problems:
    """Collects data problems while reading goes on: the first ``shown`` are kept, all are counted."""

    def __init__(self, shown: int = 20) -> None:
        self.limit = shown
        self.shown: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.shown) < self.limit:
            self.shown.append(message)

    def raise_if_any(self) -> None:
        if self.count:
            raise DataError(self.shown, self.count)
