"""The ``coord`` command line: argument parsing, one module per group of commands, and how errors become exit
statuses (``docs/design.md``, "Commands").

Owns: parsing, printing for people (``printer``, ``status_table``: the only rich user outside ``tui``), and the
mapping of ``CoordError`` to ``ExitStatus``. May import every other layer; nothing imports it except
``coordinator.__main__`` and the supervisor's after-exit hook (``python -m coordinator.cli.exec_cmd``).
"""
