"""infra/bytecode.py on a small package: what it compiles, how, and that Python uses what it wrote.

The shipped package itself (``make package``'s deployment.zip) is checked the same way in
tests/infra/test_full_deploy.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from infra import bytecode, deploy

RUNTIME = bytecode.runtime_of((sys.version_info.major, sys.version_info.minor))
TAG = sys.implementation.cache_tag
UNCHECKED_HASH = 0b01  # PEP 552: bit 0 hash-based, bit 1 check_source unset


def pyc_flags(data: bytes) -> int:
    """The flags field of a pyc header (PEP 552): the 4 bytes after the magic number, little-endian."""
    assert data[:4] == importlib.util.MAGIC_NUMBER, "a pyc of another interpreter version"
    return int.from_bytes(data[4:8], "little")


def sources_package(path: Path) -> Path:
    """A zip laid out as Chalice lays a package: app, chalicelib, a dependency; and a stale cache."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("app.py", "from chalicelib import limits\nANSWER = limits.VALUE + 1\n")
        archive.writestr("chalicelib/__init__.py", "")
        archive.writestr("chalicelib/limits.py", "import dependency\nVALUE = dependency.BASE * 2\n"
                                                 "KNOWN = 'x' in {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\n")
        archive.writestr("dependency/__init__.py", "BASE = 20\n")
        archive.writestr("dependency-1.0.dist-info/METADATA", "Name: dependency\n")
        archive.writestr("chalicelib/__pycache__/limits.cpython-312.pyc", b"stale")
        archive.writestr(f"chalicelib/__pycache__/gone.{TAG}.pyc", b"stale")
    return path


def test_every_source_gets_an_unchecked_hash_pyc_and_stale_caches_go(tmp_path):
    package = sources_package(tmp_path / "deployment.zip")
    assert bytecode.compile_package(package, RUNTIME) is True
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        pycs = {name: archive.read(name) for name in names if name.endswith(".pyc")}
    assert sorted(pycs) == [f"__pycache__/app.{TAG}.pyc", f"chalicelib/__pycache__/__init__.{TAG}.pyc",
                            f"chalicelib/__pycache__/limits.{TAG}.pyc", f"dependency/__pycache__/__init__.{TAG}.pyc"]
    assert {name: pyc_flags(data) for name, data in pycs.items()} == dict.fromkeys(pycs, UNCHECKED_HASH)
    assert "dependency-1.0.dist-info/METADATA" in names
    assert names == sorted(names)


def test_the_zip_is_written_deterministically_and_compiled_once(tmp_path):
    """Across builds too: the set constant in chalicelib/limits.py is ordered by the strings' hashes."""
    first, second = sources_package(tmp_path / "first.zip"), sources_package(tmp_path / "second.zip")
    bytecode.compile_package(first, RUNTIME)
    build = "import sys; from pathlib import Path; from infra import bytecode; bytecode.compile_package(Path(sys.argv[1]), sys.argv[2])"
    for seed in ("1", "2"):
        if seed == "2":
            second = sources_package(tmp_path / "second.zip")
        done = subprocess.run([sys.executable, "-c", build, str(second), RUNTIME], cwd=deploy.ROOT, capture_output=True,
                              text=True, check=False, env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        assert first.read_bytes() == second.read_bytes(), f"PYTHONHASHSEED={seed}"
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {bytecode.EPOCH}
        assert {info.external_attr >> 16 for info in archive.infolist()} == {0o100644}
    before = first.read_bytes()
    assert bytecode.compile_package(first, RUNTIME) is False
    assert first.read_bytes() == before


def test_python_imports_the_compiled_bytecode_without_reading_the_sources(tmp_path):
    """With the sources replaced by text that does not compile, the import still works: it used the pycs."""
    package = sources_package(tmp_path / "deployment.zip")
    bytecode.compile_package(package, RUNTIME)
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(unpacked)
    for source in ("app.py", "chalicelib/limits.py", "dependency/__init__.py"):
        (unpacked / source).write_text("this is not Python\n")
    child = ("import sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); import app; "
             "print(app.ANSWER, app.__spec__.cached.startswith(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-I", "-c", child, str(unpacked)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["41", "True"]


def test_a_file_that_does_not_compile_fails_the_build(tmp_path):
    package = tmp_path / "deployment.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def broken(:\n")
    with pytest.raises(bytecode.BytecodeError, match="did not compile"):
        bytecode.compile_package(package, RUNTIME)


def test_another_interpreter_version_is_refused(tmp_path):
    package = sources_package(tmp_path / "deployment.zip")
    before = package.read_bytes()
    other = (3, sys.version_info.minor + 1)
    with pytest.raises(bytecode.BytecodeError, match=rf"runtime, but this is Python 3\.{other[1]}.*Build the package with"):
        bytecode.check_interpreter(RUNTIME, other)
    with pytest.raises(bytecode.BytecodeError, match="runtime, but this is Python"):
        bytecode.compile_package(package, "python3.99")
    assert package.read_bytes() == before


def test_deploy_and_package_refuse_another_interpreter_before_changing_anything(monkeypatch, capsys):
    monkeypatch.setattr(deploy, "RUNTIME", "python3.99")
    assert deploy.main(["deploy", "--stage", "dev"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("[deploy] error: the functions run on Lambda's python3.99 runtime, but this is Python")
    assert deploy.main(["package", "--stage", "dev"]) == 2


def test_the_deploy_runtime_is_the_interpreter_running_the_suite():
    """The suite runs on the functions' Python, so the packages it builds carry bytecode Lambda uses."""
    assert deploy.RUNTIME == RUNTIME


class FakePackager:
    """Chalice's packager as ``ChaliceProject`` uses it: builds a zip, and names the one its deployer uploads."""

    def __init__(self, built: Path, uploaded: Path) -> None:
        self.built, self.uploaded = built, uploaded

    def create_deployment_package(self, _project_dir: str, _python_version: str) -> str:
        return str(self.built)

    def deployment_package_filename(self, _project_dir: str, _python_version: str) -> str:
        return str(self.uploaded)


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uploaded: Path | None = None) -> tuple[Any, Any, Path]:
    built = sources_package(tmp_path / "built.zip")
    project = deploy.ChaliceProject(tmp_path)
    monkeypatch.setattr(deploy.ChaliceProject, "_packager", staticmethod(lambda _config: FakePackager(built, uploaded or built)))
    monkeypatch.setattr(project.factory, "create_botocore_session", lambda: None)
    monkeypatch.setattr(project.factory, "create_default_deployer",
                        lambda **_kwargs: SimpleNamespace(deploy=lambda _config, chalice_stage_name: {"stage": chalice_stage_name}))
    config = SimpleNamespace(automatic_layer=False, lambda_python_version=RUNTIME, project_dir=str(tmp_path))
    return project, config, built


def test_deploy_compiles_the_package_before_chalice_uploads_it(tmp_path, monkeypatch):
    project, config, built = _project(tmp_path, monkeypatch)
    assert project.deploy(config, "dev") == {"stage": "dev"}
    assert bytecode.is_compiled(built)


def test_a_deploy_that_uploaded_another_package_fails(tmp_path, monkeypatch):
    project, config, _built = _project(tmp_path, monkeypatch, uploaded=tmp_path / "other.zip")
    with pytest.raises(bytecode.BytecodeError, match="other than built.zip, maybe without bytecode; deploy again"):
        project.deploy(config, "dev")


def test_a_package_split_into_layers_is_refused(tmp_path, monkeypatch):
    project, config, built = _project(tmp_path, monkeypatch)
    config.automatic_layer = True
    with pytest.raises(deploy.Refused, match="automatic_layer"):
        project.deploy(config, "dev")
    assert not bytecode.is_compiled(built)
