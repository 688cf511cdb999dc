"""Feedback from analysts: a simulated investigator and the evaluation with feedback."""
