"""Errors that the CLI reports as one line, without a traceback."""


class SenclipError(Exception):
    """A problem with the user's input or environment (bad path, bad file, bad option).

    The CLI prints ``error: <message>`` and exits with status 2; library users
    catch it like any exception. Messages say what is wrong and how to fix it.
    """


class DatasetNotFoundError(SenclipError):
    """A dataset root is missing or does not have the expected layout."""


class SenclipNote(UserWarning):
    """Something senclip corrected or chose for the user (e.g. QuickGELU for OpenAI-layout weights).

    Library users get a standard warning (filter it, or turn it into an error
    with ``warnings.simplefilter("error", SenclipNote)``); the CLI prints it as
    one line ``note: <message>`` on stderr.
    """
