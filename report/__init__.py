"""Figures and the reproduction report of the paper's experiments (matplotlib)."""
