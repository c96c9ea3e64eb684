"""The one error type that dataset loading raises."""


class DatasetError(ValueError):
    """A dataset could not be loaded: the message names the source and what is wrong with it.

    Raised before anything is returned, so a caller never holds a half-loaded or
    half-validated dataset.
    """
