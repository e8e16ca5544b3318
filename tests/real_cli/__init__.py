"""End-to-end suites of the real agent CLIs (codex, Claude Code) against scripted loopback model servers."""
