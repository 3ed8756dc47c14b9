"""Exceptions the engine raises. Each message is one line that says what is wrong and what to do."""


class MedSRError(Exception):
    """Bad input or an impossible request; the CLI prints the message alone and exits non-zero."""


class Cancelled(MedSRError):
    """The caller's ``cancel()`` returned True between two batches."""
