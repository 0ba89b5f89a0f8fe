"""Generated reference text stays in step with the declarations."""

from __future__ import annotations

from pathlib import Path

from sseproxy.docs import describe_text, faults_markdown
from sseproxy.faults import all_faults
from sseproxy.scenario import preset_names

ROOT = Path(__file__).resolve().parent.parent


def test_docs_faults_md_is_current() -> None:
    current = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    assert current == faults_markdown(), (
        "docs/faults.md is stale: run `sseproxy scenarios describe --markdown > docs/faults.md`"
    )


def test_every_fault_and_parameter_and_preset_is_documented() -> None:
    page = faults_markdown()
    for name, cls in all_faults().items():
        assert f"## `{name}`" in page
        assert cls.summary and cls.__module__ and cls.params is not None
        for param in cls.params:
            assert f"| `{param.name}` |" in page
            assert param.help, f"{name}.{param.name} has no help"
    for preset in preset_names():
        assert f"| `{preset}` |" in page


def test_describe_one_fault_shows_only_it_and_the_common_fields() -> None:
    text = describe_text("idle-timeout")
    assert text.startswith("idle-timeout: ")
    assert "latency:" not in text
    assert "Fields every fault takes:" in text
