"""`X-Accel-Buffering` and the built-in server: `?accel=omit` (or `serve --accel omit`)
leaves it out so a buffer fault shows, and a buffer that stands aside because of it says
so in the journal."""

from __future__ import annotations

from click.testing import CliRunner
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.cli import main
from tests.harness import memory_proxy
from tests.test_fault_buffer import EVERY_SECOND, events, filled_at

BUFFER = '[[faults]]\ntype = "buffer"\n'


async def test_by_default_the_buffer_stands_aside_and_the_journal_says_why(
    autojump_clock: MockClock,
) -> None:
    async with memory_proxy(BUFFER, EVERY_SECOND) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, 4))))
        assert got.headers[b"x-accel-buffering"] == b"no"
        assert [at for at, _ in got.chunks] == [0.0, 1.0, 2.0]
        (note,) = mp.journal.of_kind("fault")
        assert (note["fault"], note["action"], note["t"]) == ("buffer", "note", 0.0)
        assert "X-Accel-Buffering: no" in note["detail"]
        assert "unbuffered" in note["detail"]


async def test_accel_omit_leaves_the_header_out_and_the_buffer_holds(
    autojump_clock: MockClock,
) -> None:
    last = filled_at(4096)
    async with memory_proxy(BUFFER, EVERY_SECOND) as mp:
        limit = len(events(range(1, last + 1)))
        got = await mp.client().get("/events?accel=omit", limit=limit)
        assert b"x-accel-buffering" not in got.headers
        assert {at for at, _ in got.chunks} == {float(last - 1)}
        assert mp.journal.of_kind("fault") == []


async def test_the_serve_setting_does_the_same(autojump_clock: MockClock) -> None:
    omit = origin.OriginSettings(interval=1, heartbeat=0, accel="omit")
    async with memory_proxy("", omit) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, 2))))
        assert b"x-accel-buffering" not in got.headers
        got = await mp.client().get("/events?accel=no", limit=len(events(range(1, 2))))
        assert got.headers[b"x-accel-buffering"] == b"no"
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--accel" in result.output
    result = CliRunner().invoke(main, ["serve", "--accel", "yes"])
    assert result.exit_code == 2
    assert "invalid accel='yes'" in result.output
