"""The errors a user can cause. Each message is the one line the user sees."""


class TrellisError(Exception):
    """Base of every error trellis raises on purpose."""


class BadArgumentError(TrellisError, ValueError):
    """A command-line value could not be cast to the type of `arg`'s default."""


class UnknownRunError(TrellisError, LookupError):
    """No run (or more than one) matches the id or prefix given."""


class UnknownNameError(TrellisError, LookupError):
    """A name asked of `dataframe` was never logged."""


class NoCheckpointError(TrellisError, LookupError):
    """A run has no checkpoint at the iteration asked for."""


class StoreError(TrellisError):
    """The store cannot be opened or is not a trellis store."""


class UntrustedObjectError(TrellisError):
    """A stored object came from someone else and would run code when loaded."""
