"""What ``pack`` and ``check`` say about a submission: a verdict and every problem found, each with a stable code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"


@dataclass(frozen=True)
class Problem:
    """One finding. ``code`` is stable (tests and scripts match on it); ``message`` is one line for people."""

    code: str
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"[{self.code}] {self.path + ': ' if self.path else ''}{self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "path": self.path}


@dataclass
class Report:
    """Errors (any one rejects the submission), warnings (reported, never reject) and facts about the submission."""

    source: str
    format: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def error(self, code: str, message: str, path: str = "") -> None:
        problem = Problem(code, " ".join(str(message).split()), path)
        if problem not in self.problems:
            self.problems.append(problem)

    def warn(self, code: str, message: str, path: str = "") -> None:
        problem = Problem(code, " ".join(str(message).split()), path)
        if problem not in self.warnings:
            self.warnings.append(problem)

    def extend(self, other: "Report") -> None:
        for p in other.problems:
            self.error(p.code, p.message, p.path)
        for w in other.warnings:
            self.warn(w.code, w.message, w.path)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return ACCEPTED if self.ok else REJECTED

    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "source": self.source, "format": self.format,
                "problems": [p.to_dict() for p in self.problems],
                "warnings": [w.to_dict() for w in self.warnings], "info": self.info}

    def render(self) -> str:
        """The human-readable report: verdict line, then every problem, then every warning."""
        lines = [f"{self.verdict}: {self.source}" + (f" ({self.format})" if self.format else "")]
        if self.problems:
            lines.append(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}:")
            lines += [f"  - {p}" for p in self.problems]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}:")
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)
