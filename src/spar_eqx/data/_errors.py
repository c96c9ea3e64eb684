"""The error types of the data modules: loading's `DatasetError` and `collect`'s `CollectError`."""


class DatasetError(ValueError):
    """A dataset could not be loaded: the message names the source and what is wrong with it.

    Raised before anything is returned, so a caller never holds a half-loaded or
    half-validated dataset.
    """


class CollectError(ValueError):
    """What `collect` was asked cannot be done; the message says what was given and what to do."""
