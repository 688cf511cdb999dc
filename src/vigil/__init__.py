"""Vigil: real-time card fraud detection with a complete MLOps lifecycle."""

__version__ = "0.1.0"
