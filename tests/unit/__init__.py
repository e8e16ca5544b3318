"""Fast tests of single layers, one folder per subpackage of ``coordinator/``: pure rules, records, the store, the
judge, prompts, plans and agents, and the engine against a fake executor and clock."""
