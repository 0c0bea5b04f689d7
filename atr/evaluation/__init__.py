"""Scoring a model package on a dataset, calibrating its policy, and reporting on it."""
