"""Loading a sibling module by path, for the processes that run a file of this folder by path under
``python -I -S`` (the supervisor, the fork server) and so cannot import their package.

``load_sibling`` runs the module's cached bytecode (``__pycache__/STEM.TAG.pyc``, written whenever coord imported it
normally) when it still matches the source, and compiles the source otherwise. Not compiling saves start-up time in
each supervisor, and memory in the fork server: the compiler's leftovers would be copied into every supervisor it
forks. No ``importlib``: its import alone costs more than the whole load.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # not typing's (see supervisor.py)
if TYPE_CHECKING:
    from types import CodeType, ModuleType


def cached_code(source_path: str) -> CodeType | None:
    """The code object of ``source_path``'s timestamp-based ``.pyc`` when it was made by this interpreter from the
    source as it is now (same mtime and size, as the import system checks), else None."""
    folder, name = os.path.split(source_path)
    stem = name.rpartition(".")[0]
    cached = os.path.join(folder, "__pycache__", f"{stem}.{sys.implementation.cache_tag}.pyc")
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER  # frozen, loaded in every interpreter
    try:
        with open(cached, "rb") as handle:
            data = handle.read()
        source = os.stat(source_path)
    except OSError:
        return None
    if len(data) < 16 or data[:4] != magic or int.from_bytes(data[4:8], "little") != 0:
        return None  # another Python's, or a hash-based one
    if int.from_bytes(data[8:12], "little") != int(source.st_mtime) & 0xFFFFFFFF or \
            int.from_bytes(data[12:16], "little") != source.st_size & 0xFFFFFFFF:
        return None  # the source changed since
    try:
        return marshal.loads(data[16:])
    except (EOFError, ValueError, TypeError):
        return None


def load_sibling(anchor: str, stem: str) -> ModuleType:
    """The module ``STEM.py`` in the folder of the file ``anchor``, as a module object of its own (its
    ``__file__`` set, so it can load its own siblings the same way)."""
    path = os.path.join(os.path.dirname(os.path.abspath(anchor)), f"{stem}.py")
    module = type(sys)(f"coord_{stem}")
    module.__file__ = path
    code = cached_code(path)
    if code is None:
        with open(path, encoding="utf-8") as handle:
            code = compile(handle.read(), path, "exec")
    exec(code, module.__dict__)  # noqa: S102 - coord's own file, by path
    return module
