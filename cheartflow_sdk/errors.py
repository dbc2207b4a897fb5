"""Exceptions raised by cheartflow-sdk. Every message says what was expected."""


class CheartflowError(Exception):
    """Base class of all errors raised by cheartflow-sdk."""


class InvalidInputError(CheartflowError, ValueError):
    """An array, file or argument does not have the expected shape, dtype, range or content."""


class ModelMismatchError(CheartflowError, ValueError):
    """A model or engine does not match the input (sketch kind, resolution) or the running system."""


class MissingDependencyError(CheartflowError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class NativeUnavailableError(CheartflowError, RuntimeError):
    """The native module `_C` (or its CUDA path) cannot be used on this machine."""


class ModelNotAvailableError(CheartflowError, FileNotFoundError):
    """No model was found where one was asked for (including the bundled default)."""
