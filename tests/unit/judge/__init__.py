"""Verdict checks: report and marker text, verify commands, and judge() over real evidence."""
