"""Plans: the frozen model (``model``) and the YAML loader with validation (``loader``)."""
