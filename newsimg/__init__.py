"""newsimg: find the right photo for a news article."""

__version__ = "0.1.0"
