"""The library's error for bad input: the CLI prints its message on one line
and exits with code 2."""


class RandconvError(ValueError):
  """Bad input from the user: an unknown name, a bad file, a bad size."""
