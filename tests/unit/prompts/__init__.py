"""Prompt rendering: packaged and workspace templates, remediation evidence, template errors."""
