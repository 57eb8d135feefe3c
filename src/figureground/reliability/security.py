"""Static checks of the source tree: no shell strings, no unguarded pickle, no unsafe YAML."""

from __future__ import annotations

import re
from pathlib import Path

from figureground.reliability.harness import Outcome

#: Pattern -> what it would mean; a line matching it is a finding unless its file allows it.
RULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "shell=True": (r"shell\s*=\s*True", "a command line built as a shell string", ()),
    "os.system / os.popen": (r"os\.(system|popen)\(", "a shell command", ()),
    "pickle.load(s)": (r"pickle\.loads?\(", "unpickling (runs code)", ()),
    "torch.load without weights_only=True": (
        r"torch\.load\((?![^)]*weights_only=True)",
        "unpickling weights",
        (),
    ),
    "np.load(allow_pickle=True)": (
        r"allow_pickle\s*=\s*True",
        "unpickling arrays",
        ("neural/arrays.py",),  # only behind trust_pickle=True (--trust-pickle)
    ),
    "yaml.load / unsafe_load": (r"yaml\.(unsafe_)?load\(", "YAML that builds objects", ()),
    "eval / exec": (r"(?<![\w.])(eval|exec)\(", "running strings as code", ()),
}


def scan(source: Path) -> list[Outcome]:
    """One row per rule: the number of Python files checked and the offending lines."""
    files = sorted(p for p in source.rglob("*.py") if "reliability" not in p.parts)
    outcomes = []
    for name, (pattern, meaning, allowed) in RULES.items():
        regex = re.compile(pattern)
        findings = []
        for path in files:
            rel = path.relative_to(source).as_posix()
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if regex.search(code) and not rel.endswith(allowed or ("\0",)):
                    findings.append(f"{rel}:{number}")
        detail = (
            f"none in {len(files)} files ({meaning})"
            if not findings
            else f"{meaning}: {', '.join(findings[:5])}"
        )
        if allowed:
            detail += f"; allowed in {', '.join(allowed)} (explicit trust only)"
        outcomes.append(Outcome("security", name, len(files), len(files) - len(findings), detail))
    return outcomes
