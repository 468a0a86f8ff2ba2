"""The one exception type for bad input: its message is the single line a user sees."""


class TransferlabError(Exception):
    """A problem with the user's config or data. The message names the problem and the fix."""
