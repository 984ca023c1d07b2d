"""Bytecode compiled ahead into the Lambda deployment package.

Lambda unpacks a function's zip into ``/var/task``, which is read-only: Python cannot write
``__pycache__`` there, so a package of sources is compiled again at every cold start (app.py,
chalicelib, chalice/app.py and every dependency a path imports; docs/PERFORMANCE.md "Where the
time goes", item 1). ``compile_package`` compiles every ``.py`` of a zip Chalice built with the
building interpreter (``python -m compileall``), as *unchecked-hash* pycs (PEP 552): the importer uses them
without comparing them with the source's modification time, which the zip does not keep reliably
and which Lambda's unpacking may change. Then it writes the zip again, deterministically (entries
sorted, fixed timestamps, modes 644 or 755), so the same inputs give the same bytes.

A pyc is only used by the interpreter version that wrote it (``__pycache__/x.cpython-311.pyc``),
so the building interpreter must be the runtime's version: ``check_interpreter`` refuses any other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RUNTIME_ROOT = "/var/task"  # where Lambda unpacks the package: the file names tracebacks show
FILE_MODE = 0o644  # readable by the user Lambda runs the function as, whatever the zip said
EXECUTABLE_MODE = 0o755
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
COMPRESS_LEVEL = 9


class BytecodeError(Exception):
    """The package cannot be compiled for its runtime (wrong interpreter, a file that does not compile)."""


def runtime_of(version: tuple[int, int]) -> str:
    """Lambda's runtime name for an interpreter version: ``python3.11``."""
    return f"python{version[0]}.{version[1]}"


def check_interpreter(runtime: str, version: tuple[int, int] | None = None) -> None:
    """Refuse to compile for ``runtime`` (``python3.11``) with an interpreter of another version."""
    version = version or (sys.version_info.major, sys.version_info.minor)
    if runtime_of(version) != runtime:
        raise BytecodeError(
            f"the functions run on Lambda's {runtime} runtime, but this is Python {version[0]}.{version[1]}: "
            f"bytecode it compiles would be ignored there. Build the package with {runtime}."
        )


def marker(cache_tag: str | None = None) -> str:
    """The zip entry that says a package carries compiled bytecode: app.py's pyc."""
    return f"__pycache__/app.{cache_tag or sys.implementation.cache_tag}.pyc"


def is_compiled(zip_path: Path) -> bool:
    with zipfile.ZipFile(zip_path) as archive:
        return marker() in archive.namelist()


def compile_package(zip_path: Path, runtime: str) -> bool:
    """Compile every ``.py`` of the zip at ``zip_path`` into it, in place; False if it already was.

    Any ``__pycache__`` the zip carried (a developer's timestamp-based caches, other versions')
    is dropped first, so every pyc in the result is this interpreter's and unchecked-hash.
    """
    check_interpreter(runtime)
    if is_compiled(zip_path):
        return False
    with tempfile.TemporaryDirectory(prefix="bytecode-", dir=zip_path.parent) as work:
        root = Path(work) / "package"
        modes: dict[str, int] = {}
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                if info.is_dir() or "__pycache__/" in info.filename or info.filename.endswith(".pyc"):
                    continue
                target = (root / info.filename).resolve()
                if not target.is_relative_to(root.resolve()):
                    raise BytecodeError(f"{zip_path.name}: entry {info.filename!r} points outside the package")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
                modes[info.filename] = EXECUTABLE_MODE if (info.external_attr >> 16) & 0o111 else FILE_MODE
        compile_tree(root)
        rezipped = Path(work) / "package.zip"
        write_zip(root, rezipped, modes)
        os.replace(rezipped, zip_path)
    return True


def compile_tree(root: Path) -> None:
    """``python -m compileall`` (``compileall.compile_dir``) of ``root``: unchecked-hash pycs, names under /var/task.

    In a child interpreter with a fixed hash seed: the order of a set constant (``x in {"a", "b"}``)
    in a pyc follows the strings' hashes, so the seed would otherwise change the bytes from run to run.
    """
    command = [sys.executable, "-m", "compileall", "-q", "-f", "-d", RUNTIME_ROOT,
               "--invalidation-mode", "unchecked-hash", str(root)]
    done = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=False)
    if done.returncode:
        raise BytecodeError(f"some files of the package did not compile:\n{(done.stdout + done.stderr)[-3000:]}")


def write_zip(root: Path, zip_path: Path, modes: dict[str, int] | None = None) -> None:
    """Every file under ``root`` into a new zip, deterministically: sorted names, fixed time and modes."""
    modes = modes or {}
    names = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = 3  # Unix, so the mode bits below are honoured
            info.external_attr = (0o100000 | modes.get(name, FILE_MODE)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes(), compresslevel=COMPRESS_LEVEL)
