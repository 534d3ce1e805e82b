"""Exceptions that carry a message meant for the person who made the request."""


class MoodtapeError(Exception):
    """Base class: the message is safe and useful to show to a user as it is."""


class InvalidInputError(MoodtapeError, ValueError):
    """A request value is wrong; the message names it and says how to fix it."""


class ModelLoadError(MoodtapeError, RuntimeError):
    """A model could not be loaded; the message says how to make it available."""


class GenerationCancelled(MoodtapeError):
    """The person cancelled the request before it finished."""


class OutOfMemory(MoodtapeError, MemoryError):
    """The machine ran out of memory for this request; the message says what to ask for instead."""
