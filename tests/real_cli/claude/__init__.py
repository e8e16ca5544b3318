"""The real Claude Code CLI end to end, against ``ScriptedMessagesServer`` (the Anthropic Messages API)."""
