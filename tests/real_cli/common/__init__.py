"""What the end-to-end suites of the real agent CLIs (``tests/real_cli/codex``, ``tests/real_cli/claude``) share.

``sse_server``: the scripted, loopback model server both protocol servers are built on. ``real_runs``: finding the
real binary, writing a plan for it, running ``coord run --headless`` and the checks every such run makes.
"""
