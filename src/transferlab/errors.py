"""The exceptions a run ends with, and the one-line wording helpers they share. Imports nothing heavy."""

import difflib


class TransferlabError(Exception):
    """A problem with the user's config or data. The message names the problem and the fix."""


class Interrupted(TransferlabError):
    """The run stopped on a signal (in fit after saving last.ckpt, or while preparing data: signals.py); exit status
    128 + the signal number, like the shell; metrics.json status: interrupted."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
