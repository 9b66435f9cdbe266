"""The model: syntax -> parameter table -> matrices (and start values, constraints, graph)."""
