"""The tools layer."""
