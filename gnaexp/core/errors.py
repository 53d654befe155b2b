"""gnaexp's own exceptions: a problem with what the user gave, as opposed to a defect of gnaexp.

``BadInput`` is raised for a file, a setting or a model that cannot be used (a network the GNA plugin refuses
included); its message names the problem and the fix, and the command exits 2 with it. Any other exception that
reaches the command line is a defect of gnaexp: exit 1, its traceback saved for a report. Both are ValueErrors
(``UnknownName`` also a KeyError), so code that handles a library error as before still does.
"""

from __future__ import annotations


class BadInput(ValueError):
    """What the user gave cannot be used; the message says what and how to fix it."""


class UnknownName(BadInput, KeyError):
    """A name the user gave (a setting, a corpus model) that does not exist; the message lists the valid ones."""

    def __str__(self) -> str:  # a KeyError would quote its message
        return str(self.args[0]) if self.args else ""
