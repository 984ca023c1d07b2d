"""Items service: everything here ships with the Lambda package."""

__version__ = "1.0.0"
