"""Errors an engine raises, independent of any HTTP wire format.

    EngineError
    ├── EngineDeadError        the engine process is gone; every later request fails too
    ├── EngineBusyError        the engine's queue is full (or, when asked, it would have to wait)
    ├── EngineRequestError     the engine refused this one request (bad parameters)
    └── EngineStartError       the engine could not be built (bad checkpoint, no memory)

The vLLM adapter translates vLLM's own exceptions into these in one place; the server maps these
into Workers AI errors in one place.
"""


class EngineError(Exception):
    """Base class of engine failures."""


class EngineDeadError(EngineError):
    """The engine is no longer running."""


class EngineBusyError(EngineError):
    """The engine cannot take the request now: its waiting queue is full, or the request asked
    not to wait and every running slot is taken. Trying again later can succeed."""


class EngineRequestError(EngineError):
    """The engine rejected a request; the engine itself is still healthy."""


class EngineStartError(EngineError):
    """The engine could not be started."""
