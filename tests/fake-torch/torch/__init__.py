"""TEST FAKE of the torch package: only what examples read of their distributed setup."""
from . import cuda, distributed  # noqa: F401

__version__ = "0.0.0+kubevet.fake"
