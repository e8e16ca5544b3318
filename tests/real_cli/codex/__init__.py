"""The real codex CLI end to end, against ``ScriptedResponsesServer`` (the OpenAI Responses API)."""
