"""Estimation: observed data and sample statistics, the loss families and the optimizer."""
