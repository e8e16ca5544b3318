"""End-to-end tests: the real ``coord`` CLI as a subprocess over real workspaces, the fake codex CLI as the model."""
