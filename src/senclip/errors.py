"""Errors that the CLI reports as one line, without a traceback."""


class SenclipError(Exception):
    """A problem with the user's input or environment (bad path, bad file, bad option).

    The CLI prints ``error: <message>`` and exits with status 2; library users
    catch it like any exception. Messages say what is wrong and how to fix it.
    """


class DatasetNotFoundError(SenclipError):
    """A dataset root is missing or does not have the expected layout."""
