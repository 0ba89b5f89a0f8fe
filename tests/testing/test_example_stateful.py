"""Example 6 of docs/testing.md: faults added and removed live while a stream flows.

A `RuleBasedStateMachine` drives a proxy in memory (in a background trio thread whose
`MockClock` only moves when a rule says so) and a client that reads and resumes with
Last-Event-ID. Rules add or remove a fault (`set_scenario`, which reaches the open
connection too, since the proxy is live), maybe restarting the client's connection
with it, restart it alone, and let time pass.

Invariants: every connection's body is a byte-exact prefix of what the server sent on it
(no byte lost, altered or reordered: a stream may only be cut short), a connection cut
short by the proxy has a journal record of the fault that did it, and the events the
client got are 1, 2, 3... with nothing lost or repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sseproxy.origin import encode_event
from sseproxy.scenario import FaultSpec, Scenario
from sseproxy.strategies import faults
from sseproxy.testing import BackgroundTrio, MemoryProxy, OriginSettings, Record, memory_proxy
from tests.testing.clients import Response, get_events

# Faults that delay, re-chunk or cut the stream; none of them rewrites bytes.
LIVE_FAULTS = faults(
    types=[
        "latency", "slicer", "delay-events", "buffer", "bandwidth", "stall",
        "reset", "cut", "client-abort", "idle-timeout", "lifetime",
    ],
    max_duration=5,
    common=False,
)  # fmt: skip
ORIGIN = OriginSettings(interval=1.0, heartbeat=0)


@dataclass
class Connection:
    first_id: int
    response: Response = field(default_factory=Response)

    def expected(self) -> bytes:
        """What the server sent on this connection, at least as long as what arrived."""
        wanted, out, n = len(self.response.body), b"", self.first_id
        while len(out) < wanted:
            out, n = out + encode_event(n), n + 1
        return out


class Client:
    """Reads and resumes after the last event id: at once when restarted, else 1s after
    the stream ended."""

    def __init__(self, proxy: MemoryProxy) -> None:
        self.proxy = proxy
        self.connections: list[Connection] = []
        self.scope = trio.CancelScope()

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        last_id = 0
        while True:
            conn = Connection(last_id + 1)
            self.connections.append(conn)
            with trio.CancelScope() as self.scope:
                stream = await self.proxy.connect()
                await get_events(stream, last_event_id=str(last_id or ""), into=conn.response)
            last_id = max([last_id, *(int(e.id) for e in conn.response.events)])
            if not self.scope.cancelled_caught:
                await trio.sleep(1.0)


class LiveFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = trio.testing.MockClock()  # moves only when a rule jumps it
        self.loop = BackgroundTrio(clock=self.clock).__enter__()
        self.proxy = self.loop.enter(memory_proxy(ORIGIN, seed=1))
        self.client = Client(self.proxy)
        self.loop.start(self.client.run)
        self.loop.run(self._settle)
        self.specs: list[FaultSpec] = []

    def teardown(self) -> None:
        self.loop.close()

    def _apply(self, restart: bool) -> None:
        """Put the faults in force: on the open connection too (the proxy is live), and
        on a new one if `restart`."""
        names = [f"f{i}" for i in range(len(self.specs))]
        specs = tuple(
            dataclasses.replace(s, name=n) for s, n in zip(self.specs, names, strict=True)
        )
        self.loop.run_sync(self.proxy.set_scenario, Scenario(name="live", faults=specs))
        if restart:
            self.restart_connection()
        else:
            self.loop.run(self._settle)

    def _observed(self) -> tuple[list[tuple[bytes, bytes]], list[int], list[Record]]:
        """(body, what the server sent) per stream from the server, the event ids, the
        journal. A fault may answer in the server's place (`idle-timeout` with `status`,
        even 200): that body is the proxy's, not a prefix of the stream."""
        ok = [
            c
            for c in self.client.connections
            if c.response.status == 200 and c.response.content_type == "text/event-stream"
        ]
        bodies = [(c.response.body, c.expected()) for c in ok]
        ids = [int(event.id) for c in ok for event in c.response.events]
        return bodies, ids, self.proxy.records

    async def _settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    @precondition(lambda self: len(self.specs) < 3)
    @rule(spec=LIVE_FAULTS, restart=st.booleans())
    def add_fault(self, spec: FaultSpec, restart: bool) -> None:
        self.specs.append(spec)
        self._apply(restart)

    @precondition(lambda self: self.specs)
    @rule(data=st.data(), restart=st.booleans())
    def remove_fault(self, data: st.DataObject, restart: bool) -> None:
        self.specs.pop(data.draw(st.integers(0, len(self.specs) - 1)))
        self._apply(restart)

    @rule()
    def restart_connection(self) -> None:
        """The client drops its connection; the next one gets the scenario in force."""
        self.loop.run_sync(self.client.scope.cancel)
        self.loop.run(self._settle)

    @rule(seconds=st.sampled_from([0.001, 0.5, 1.0, 5.0, 30.0, 120.0]))
    def let_time_pass(self, seconds: float) -> None:
        async def advance() -> None:
            self.clock.jump(seconds)
            await self._settle()

        self.loop.run(advance)

    @invariant()
    def no_byte_lost_except_where_a_fault_says_so(self) -> None:
        bodies, ids, records = self.loop.run_sync(self._observed)
        for body, expected in bodies:
            assert body == expected[: len(body)]
        assert ids == list(range(1, len(ids) + 1))
        cut = {r["conn"] for r in records if r["kind"] == "closed" and r["by"] != "client"}
        said = {r["conn"] for r in records if r["kind"] == "fault" and r["action"] != "note"}
        assert cut <= said, f"connections cut with no fault record: {sorted(cut - said)}"


LiveFaults.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_live_faults = LiveFaults.TestCase
