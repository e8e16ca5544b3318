"""Plans in: the frozen plan model, the YAML loader and validator, and the importers of markdown plan folders.

Owns: ``Plan``, ``Phase``, ``Policy`` and friends (``model``), every check a plan file must pass with its
``file:line:column`` (``loader``), and ``coord import``'s readers (``importer``). May import ``errors``, ``paths``
and ``util``; the prompt layer is reached only through the loader's dry render (see the import contracts in
``pyproject.toml``).
"""
