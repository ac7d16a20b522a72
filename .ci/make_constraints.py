"""Print the pins of neuroscribe[service]'s dependency closure as installed in this venv (the body of
constraints.txt, less its header and the packages installed with --no-deps: see DEVELOPERS.md).

    .venv/bin/python .ci/make_constraints.py
"""
import re
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

seen, order = {}, []
def visit(name, extras=()):
    key = canonicalize_name(name)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return
    new = key not in seen
    seen.setdefault(key, (dist.metadata["Name"], dist.version))
    for r in dist.requires or []:
        req = Requirement(r)
        env_ok = True
        if req.marker is not None:
            env_ok = any(req.marker.evaluate({"extra": e}) for e in ("",) + tuple(extras))
        if env_ok and (new or extras):
            if canonicalize_name(req.name) not in seen:
                visit(req.name, tuple(req.extras))
visit("neuroscribe", ("service",))
for key, (name, version) in sorted(seen.items()):
    if key == "neuroscribe":
        continue
    version = version.split("+")[0]
    print(f"{name}=={version}")
