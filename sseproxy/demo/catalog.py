"""What the page builds its controls from: fault declarations, presets and the story.

All of it is generated from the declarations the rest of sseproxy uses (`Fault.params`,
`COMMON_FIELDS`, the preset files), so the page's forms cannot drift from what the
control API accepts. The story is a small data file, `story.toml`, next to this module.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from sseproxy import origin
from sseproxy.errors import ConfigError, UnitError
from sseproxy.faults import all_faults
from sseproxy.params import REQUIRED, Param, render_value
from sseproxy.report.causes import EXPLANATIONS
from sseproxy.scenario import COMMON_FIELDS, Scenario, _Reader, load_scenario, preset_names

__all__ = [
    "StoryStep",
    "catalog",
    "fault_declarations",
    "load_story",
    "quick_faults",
    "scenario_named",
]

FORM_FIELDS = ("name", "direction", "probability", "after")
"""The common fields the page's add-fault form offers beside each fault's own."""
NONE = "none"
"""The empty scenario's name (no fault), as `run` names it."""


def param_json(param: Param) -> dict[str, Any]:
    """One parameter as a form needs it: kind, help, default, bounds and choices."""
    default: Any = None
    if param.default is not REQUIRED and param.default is not None:
        value = render_value(param, param.default)
        if not (isinstance(value, float) and not math.isfinite(value)):
            default = value
    return {
        "name": param.name,
        "kind": param.kind,
        "help": param.help,
        "required": param.required,
        "default": default,
        "choices": list(param.choices),
        "minimum": param.minimum,
        "maximum": param.maximum,
        "allowed": param.allowed(),
    }


def fault_declarations() -> list[dict[str, Any]]:
    """Every fault: `type`, `summary` and `params` (the declaration, as JSON)."""
    return [
        {"type": name, "summary": cls.summary, "params": [param_json(p) for p in cls.params]}
        for name, cls in all_faults().items()
    ]


def scenario_named(name: str) -> Scenario:
    """A preset (or file) by name; `none` is the scenario without faults."""
    return Scenario(name=NONE) if name == NONE else load_scenario(name)


@dataclass(frozen=True)
class StoryStep:
    title: str
    text: str
    scenario: str
    """A preset's name, or `none`."""
    stream: str
    """The query string of the clients' `/events` requests (the built-in server's
    settings: interval, heartbeat, hb, ...)."""

    def check(self) -> Scenario:
        """The step's scenario; ConfigError (or ScenarioError) if the step is wrong."""
        for key, value in parse_qsl(self.stream, keep_blank_values=True):
            if key not in origin.SETTING_DOCS:
                raise ConfigError(f"story step {self.title!r}: unknown stream setting {key!r}")
            try:
                origin.parse_setting(key, value)
            except UnitError as error:
                raise ConfigError(f"story step {self.title!r}: {error}") from None
        return scenario_named(self.scenario)

    def times(self) -> dict[str, float]:
        """The stream's times in seconds (`interval`, `heartbeat`): at a time scale the
        page multiplies them too, so the server's pace keeps step with the faults' and the
        step tells the same story, only faster (the client's `retry` is the browser's,
        like its default 3 s, and is never scaled)."""
        return {
            key: origin.parse_setting(key, value)
            for key, value in parse_qsl(self.stream, keep_blank_values=True)
            if origin.SETTING_DOCS[key].unit == "seconds"
        }


def _story_file() -> dict[str, Any]:
    text = (resources.files("sseproxy.demo") / "story.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_story() -> list[StoryStep]:
    """The story's steps, from `story.toml`."""
    return [
        StoryStep(step["title"], step["text"], step.get("scenario", NONE), step.get("stream", ""))
        for step in _story_file()["steps"]
    ]


def quick_faults() -> list[dict[str, Any]]:
    """The one-click faults of `story.toml`: `label` and `fault` (a POST /faults body),
    each checked as a `[[faults]]` entry is (ScenarioError if one is wrong)."""
    quick = _story_file().get("quick", [])
    for index, entry in enumerate(quick):
        _Reader("", "story.toml").fault(index, dict(entry["fault"]))
    return [{"label": entry["label"], "fault": entry["fault"]} for entry in quick]


def catalog(*, stream: str) -> dict[str, Any]:
    """Everything the page reads at start (`GET /catalog.json`)."""
    presets = [{"name": NONE, "description": "no faults", "toml": Scenario(NONE).to_toml()}]
    for name in preset_names():
        scenario = load_scenario(name)
        presets.append(
            {"name": name, "description": scenario.description, "toml": scenario.to_toml()}
        )
    story = []
    for step in load_story():
        scenario = step.check()
        story.append(
            {
                "title": step.title,
                "text": step.text,
                "scenario": step.scenario,
                "toml": scenario.to_toml(),
                "stream": step.stream,
                "times": step.times(),
            }
        )
    common = [param_json(p) for p in COMMON_FIELDS if p.name in FORM_FIELDS]
    return {
        "faults": fault_declarations(),
        "common": common,
        "presets": presets,
        "story": story,
        "quick": quick_faults(),
        "explanations": dict(EXPLANATIONS),
        "stream": stream,
        "stream_settings": {
            name: {"help": doc.help, "unit": doc.unit} for name, doc in origin.SETTING_DOCS.items()
        },
    }
