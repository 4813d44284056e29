"""The console's project tabs: one list, so a page group added later appears on every project page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectTab:
    key: str  # the page's `tab` in its template context
    label: str
    suffix: str  # appended to /ui/projects/{id}

    def href(self, root: str, project_id: object) -> str:
        return f"{root}/ui/projects/{project_id}{self.suffix}"


# Page groups append their tab here when their module is imported (see api/console/__init__.py).
PROJECT_TABS: list[ProjectTab] = [
    ProjectTab("dataset", "Dataset", ""),
    ProjectTab("review", "Review queue", "/review"),
    ProjectTab("models", "Models", "/models"),
    ProjectTab("lines", "Lines", "/lines"),
    ProjectTab("schedule", "Schedule", "/schedule"),
]
