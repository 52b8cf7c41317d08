"""The exception raised for bad data: always names the file, key and what was expected."""


class DataError(ValueError):
    """Bad or inconsistent dataset content (message names file, key, expected shape/dtype)."""
