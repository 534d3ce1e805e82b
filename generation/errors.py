"""Exceptions that carry a message meant for the person who made the request, and how values are quoted in them."""


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


BUSY_MESSAGE = "Queue is full! Please try again."  # what Gradio's client says when the page's queue is full


class ServerBusy(MoodtapeError):
    """Every worker is busy and the waiting line is full: the person should try again in a moment."""


class WorkerLost(MoodtapeError, RuntimeError):
    """The worker making the track stopped after sending some of its audio; the message says what to do."""


class TimedOut(MoodtapeError, TimeoutError):
    """The request ran past the server's time limit and was stopped; the message names the limit."""


def quoted(value: object, limit: int = 60) -> str:
    """A request value for a message, as Python writes it, cut short: a 400-digit number is not worth quoting."""
    return _cut(repr(value), limit)


def brief(error: object, limit: int = 160) -> str:
    """A library's error text on one line, cut short, for the end of a message."""
    return _cut(" ".join(str(error).split()), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
