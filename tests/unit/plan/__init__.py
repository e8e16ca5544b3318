"""Plans in: the YAML loader and its problem lines, and the importers of markdown plan folders."""
