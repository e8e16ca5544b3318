"""The dashboard: a Textual app over a run, live or finished.

Owns: the only imports of textual (an import contract keeps them here), the view model read from the store
(``model``), what is drawn from it (``render``), and the dialogs (``screens``). May import ``state``, ``judge``,
``agents``, ``prompts``, ``process.control_socket`` and ``util``; it reaches a running coordinator only through its
control socket, like ``coord remediate`` does, and imports the engine only to host an in-process run.
"""
