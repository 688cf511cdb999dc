"""Offline training: the handbook's split, the training loop, run artifacts and tracking."""
