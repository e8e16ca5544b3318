"""The Textual dashboard — the only package that imports textual (checked by a test)."""
