"""Dependency direction (DESIGN.md): prompts <- workers <- service. Checked on the source, by AST."""

import ast
from pathlib import Path

import neuroscribe

PKG = Path(neuroscribe.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # resolve relative imports against the file's package
                parts = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
                mod = ".".join(parts + ((mod,) if mod else ()))
            names.add(mod)
    return names


def _modules(sub: str):
    return sorted((PKG / sub).rglob("*.py"))


def test_workers_and_prompts_never_import_service_or_transport():
    banned = ("neuroscribe.service", "redis", "fastapi", "uvicorn")
    offenders = []
    for sub in ("workers", "prompts"):
        for path in _modules(sub):
            for name in _imports(path):
                if name.startswith(banned):
                    offenders.append(f"{path.relative_to(PKG)} imports {name}")
    assert not offenders, offenders


def test_vllm_and_httpx_each_confined_to_one_module():
    # httpx is allowed in exactly one worker module: the OpenAI-compatible generation backend,
    # which is a remote compute backend, not service transport.
    allowed = {"vllm": {"workers/generate/vllm_backend.py"}, "httpx": {"workers/generate/openai_compat.py"}}
    for lib, files in allowed.items():
        users = {
            str(p.relative_to(PKG))
            for p in PKG.rglob("*.py")
            if any(n == lib or n.startswith(lib + ".") for n in _imports(p))
            and not str(p.relative_to(PKG)).startswith("service/")
        }
        assert users <= files, f"{lib} imported by {users - files}"


def test_prompts_do_not_import_workers():
    for path in _modules("prompts"):
        assert not any(n.startswith("neuroscribe.workers") for n in _imports(path)), path


def test_import_neuroscribe_is_light():
    import subprocess
    import sys

    code = "import sys, neuroscribe; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
