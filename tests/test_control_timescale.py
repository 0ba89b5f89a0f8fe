"""The control API's time scale: GET and PUT /time-scale (the demo page calls exactly
these), over real loopback sockets, and `sseproxy ctl time-scale`."""

from __future__ import annotations

import pytest
import trio

from sseproxy import origin
from tests.test_control import JSON, control_stack
from tests.test_ctl import _live

IDLE = '[scenario]\nname = "idle"\n\n[[faults]]\ntype = "idle-timeout"\ntimeout = "3s"\n'
SILENT = origin.OriginSettings(interval=100, heartbeat=0)  # one event, then silence


async def test_put_scales_new_connections_and_keeps_the_scenario_as_written() -> None:
    async with control_stack(IDLE, settings=SILENT) as stack:
        assert (await stack.api.get("/time-scale")).json() == {"factor": 1.0}
        answer = await stack.api.put("/time-scale", json={"factor": 0.1})
        assert answer.status_code == 200 and answer.json() == {"factor": 0.1}
        assert (await stack.api.get("/time-scale")).json() == {"factor": 0.1}
        assert (await stack.api.get("/status")).json()["time_scale"] == 0.1
        (record,) = stack.journal.of_kind("time-scale")
        assert (record["factor"], record["by"]) == (0.1, "control")
        faults = (await stack.api.get("/faults")).json()["faults"]
        assert faults == [{"type": "idle-timeout", "name": "idle-timeout", "timeout": "3s"}]
        stream = await stack.open_stream()
        started = trio.current_time()
        await stream.read_to_end(timeout=2.5)  # cut after 0.3 s, not 3 s
        assert trio.current_time() - started < 2.5
        (closed,) = await stack.journal.wait_for("closed")
        assert closed["reason"] == "idle-timeout"
        assert 0.3 <= closed["duration"] < 2.5


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"factor": 0}, 400),
        ({"factor": -1}, 400),
        ({"factor": "fast"}, 400),
        ({"factor": True}, 400),
        ({}, 400),
        ({"factor": 0.5, "extra": 1}, 400),
        ([0.5], 400),
    ],
)
async def test_bad_factors_are_refused_and_change_nothing(body: object, status: int) -> None:
    async with control_stack(IDLE) as stack:
        answer = await stack.api.put("/time-scale", json=body)
        assert answer.status_code == status
        assert "\n" not in answer.json()["error"]
        assert (await stack.api.get("/time-scale")).json() == {"factor": 1.0}
        assert stack.journal.of_kind("time-scale") == []


async def test_only_json_and_only_get_and_put() -> None:
    async with control_stack() as stack:
        text = await stack.api.put("/time-scale", content=b"0.1")
        assert text.status_code == 415
        patch = await stack.api.patch("/time-scale", json={"factor": 2}, headers=JSON)
        assert patch.status_code == 405 and patch.headers["allow"] == "GET, PUT"
        index = (await stack.api.get("/")).json()["endpoints"]
        assert {"GET /time-scale", "PUT /time-scale"} <= set(index)


def test_ctl_time_scale_shows_and_sets() -> None:
    for live in _live(IDLE):
        assert live.ctl("time-scale").output.strip() == "time scale 1"
        assert live.ctl("time-scale", "0.1").output.strip() == "time scale 0.1"
        assert live.ctl("time-scale", "--json").output.strip() == '{\n  "factor": 0.1\n}'
        assert "time scale 0.1 (every duration of the scenario)" in live.ctl("status").output
        refused = live.ctl("time-scale", "0")
        assert refused.exit_code == 1 and "above 0" in refused.output
        assert live.ctl("time-scale", "fast").exit_code == 2
