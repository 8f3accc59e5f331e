"""Exceptions raised by fmlearn.

Every error a user can cause says what was wrong, where (file, line, column or row) and how to
fix it. They subclass the builtin a caller would already catch (``ValueError``, ``RuntimeError``).
"""

from __future__ import annotations

import os

__all__ = [
    "DataFormatError",
    "ModelFileError",
    "TrainingDivergedError",
]


class DataFormatError(ValueError):
    """A text data file (libFM, libsvm, FFM) could not be parsed.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file being read.
    line : int or None
        1-based line number of the offending line.
    column : int or None
        1-based column (byte offset in the line) where the problem starts.
    message : str
        What was wrong and how to fix it.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        line: int | None,
        column: int | None,
        message: str,
    ):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.column = column
        self.reason = message
        where = self.path if self.path is not None else "<data>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class ModelFileError(ValueError):
    """A model file is damaged, truncated, foreign or from a newer fmlearn."""


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""
