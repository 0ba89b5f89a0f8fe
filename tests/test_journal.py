"""The journal: what each record carries, written as it happens, line by line."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace

import pytest
import trio

from sseproxy import origin
from sseproxy.journal import Journal
from tests.harness import memory_proxy


async def test_lines_are_json_and_carry_times_scenario_and_seed(autojump_clock: object) -> None:
    out = io.StringIO()
    journal = Journal(out, scenario="demo", seed=9)
    await trio.sleep(2.5)
    journal.write("opened", "c1", client="127.0.0.1")
    await journal.aclose()
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert (record["t"], record["kind"], record["conn"]) == (2.5, "opened", "c1")
    assert (record["scenario"], record["seed"]) == ("demo", 9)
    assert record["ts"].endswith("+00:00")


async def test_session_key_from_a_header_or_a_query_parameter(autojump_clock: object) -> None:
    async with memory_proxy(settings=origin.OriginSettings(count=1)) as mp:
        await mp.client().get("/events?sessionId=abc")
        await mp.client().get("/events", [("Mcp-Session-Id", "xyz")])
        await mp.client().get("/events")
        sessions = [r.get("session") for r in await mp.journal.wait_for("request", 3)]
        assert sessions == ["abc", "xyz", None]


async def test_journal_events_writes_a_line_per_event(autojump_clock: object) -> None:
    async with memory_proxy(settings=origin.OriginSettings(count=3, heartbeat=0)) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, journal_events=True)
        await mp.client().get("/events")
        events = await mp.journal.wait_for("event", 3)
        assert [(e["t"], e["id"], e["type"]) for e in events] == [
            (0.0, "1", "message"),
            (1.0, "2", "message"),
            (2.0, "3", "message"),
        ]
        assert [e["size"] for e in events] == [len(origin.encode_event(n)) for n in (1, 2, 3)]


async def test_longest_gaps_include_the_silence_that_got_the_stream_cut(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "client-watchdog"\ntimeout = "40s"\n'
    settings = origin.OriginSettings(interval=1000, heartbeat=15)
    async with memory_proxy(scenario, settings) as mp:
        await mp.client().get("/events")
        (closed,) = await mp.journal.wait_for("closed")
        # event 1 at 0, comment heartbeats at 15 and 30, cut at 40 for want of events
        assert closed["longest_gap_down"] == 15.0
        assert closed["longest_event_gap"] == 40.0


# -- a sink that cannot keep up --------------------------------------------------------------


class StalledSink(io.StringIO):
    """A file whose writes block until `release` (a pipe nobody reads), at most `patience`
    seconds of wall time: a write that had to give up means the caller was stuck too."""

    def __init__(self, patience: float = 5.0) -> None:
        super().__init__()
        self.release = threading.Event()
        self.patience = patience
        self.gave_up = False
        self.threads: set[str] = set()

    def write(self, text: str) -> int:
        self.threads.add(threading.current_thread().name)
        if not self.release.wait(self.patience):
            self.gave_up = True
            self.release.set()
        return super().write(text)


def lines_of(sink: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


async def test_a_stalled_journal_file_never_stalls_traffic(autojump_clock: object) -> None:
    sink = StalledSink()
    async with memory_proxy(settings=origin.OriginSettings(count=3, heartbeat=0)) as mp:
        mp.proxy.journal = journal = Journal(sink, keep=True)
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.body.count(b"id: ")) == (200, "end", 3)
        await journal.wait_for("ended")
        assert not sink.gave_up, "the journal's write blocked the event loop"
        assert sink.getvalue() == ""  # still stuck in its first write
    sink.release.set()
    await journal.aclose()  # what the CLI does on Ctrl-C / SIGTERM
    assert threading.current_thread().name not in sink.threads
    assert lines_of(sink) == journal.records  # nothing lost, in order


async def test_past_its_backlog_the_journal_drops_lines_and_says_how_many(
    autojump_clock: object,
) -> None:
    sink = StalledSink()
    journal = Journal(sink, keep=True, backlog=2000)
    for n in range(1, 41):
        await trio.sleep(1)
        journal.write("note", f"c{n}", text="x" * 50)
    dropped = journal.dropped
    assert 0 < dropped < 40
    first_dropped = journal.records[40 - dropped]
    assert len(journal.records) == 40  # subscribers and `keep` see every record
    sink.release.set()
    assert journal.writer is not None
    await trio.to_thread.run_sync(journal.writer.wait_written)  # the backlog has drained
    journal.write("note", "c41")
    await journal.aclose()
    lines = lines_of(sink)
    assert [line["conn"] for line in lines] == [f"c{n}" for n in range(1, 41 - dropped)] + [
        "-",
        "c41",
    ]
    overflow = lines[-2]
    assert (overflow["kind"], overflow["dropped"]) == ("journal-overflow", dropped)
    assert overflow["since"] == first_dropped["t"]
    assert overflow in journal.records


async def test_closing_the_journal_writes_the_count_of_lines_still_dropped(
    autojump_clock: object,
) -> None:
    sink = StalledSink()
    journal = Journal(sink, backlog=300)
    for n in range(5):
        journal.write("note", f"c{n}", text="x" * 50)
    assert journal.dropped == 4
    sink.release.set()
    await journal.aclose()
    kinds = [(line["kind"], line.get("dropped")) for line in lines_of(sink)]
    assert kinds == [("note", None), ("journal-overflow", 4)]


async def test_a_broken_journal_file_is_reported_once_and_never_breaks_traffic(
    autojump_clock: object, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    async with memory_proxy(settings=origin.OriginSettings(count=2, heartbeat=0)) as mp:
        mp.proxy.journal = journal = Journal(Broken(), keep=True)
        for _ in range(2):
            got = await mp.client().get("/events")
            assert (got.status, got.ending) == (200, "end")
        await journal.wait_for("ended", 2)
    await journal.aclose()
    assert capsys.readouterr().err.count("cannot write the journal") == 1
