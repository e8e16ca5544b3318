"""Fast tests of single layers: pure rules, records and the store, and the engine against a fake executor and clock."""
