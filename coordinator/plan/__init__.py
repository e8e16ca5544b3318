"""Plans in: the frozen plan model, the YAML loader and validator, and the importers of markdown plan folders.

Owns: ``Plan``, ``Phase``, ``Policy`` and friends (``model``), every check a plan file must pass with its
``file:line:column`` (``yaml_source``: bytes, YAML and positions; ``schema``: the pydantic models; ``loader``: the
semantic checks and ``load_plan``), and ``coord import``'s readers (``importers``). May import ``errors``, ``paths``
and ``util``; never the prompt layer: the template checks of a load are plugged into the loader by
``prompts.validate``, which callers use to load a plan as coord runs it.
"""
