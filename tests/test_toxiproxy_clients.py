"""toxiproxy's own clients, unchanged, drive sseproxy: `toxiproxy-python` (PyPI) and
`toxiproxy-node-client` (npm, on Debian's nodejs).

Each client is installed at test time into a cache folder ($SSEPROXY_TEST_CACHE, default
~/.cache/sseproxy-tests), never vendored; the test skips when it cannot be installed
(offline) or node is missing. A script in the client's language creates a proxy in front
of the built-in SSE server, adds and removes toxics, disables and enables the proxy and
resets, and an HTTP client's requests through the proxy show each toxic's effect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sseproxy.testing import run_origin
from tests.toxiproxy_rig import sseproxy_api

CACHE = Path(os.environ.get("SSEPROXY_TEST_CACHE", Path.home() / ".cache" / "sseproxy-tests"))


def _installed(folder: Path, command: list[str]) -> Path:
    """`command` run once into `folder` (kept when it worked); skip when it cannot run."""
    marker = folder / ".installed"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot install {command[-1]}: {error}")
    if done.returncode != 0:
        pytest.skip(f"cannot install {command[-1]} (offline?): {done.stderr.strip()[-300:]}")
    marker.touch()
    return folder


@pytest.fixture(scope="module")
def origin_url() -> Iterator[str]:
    with run_origin(interval=0.05, heartbeat=0) as url:
        yield url


PYTHON_SCRIPT = r"""
import socket, sys, time
import requests
from toxiproxy import Toxiproxy

api_host, api_port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
server = Toxiproxy()
server.update_api_consumer(api_host, api_port)
assert server.running()
assert b"version" in server.version()
server.destroy_all()
proxy = server.create(upstream=upstream, name="events", listen="127.0.0.1:0")
url = "http://%s/events" % proxy.listen

def first_event(**query):
    start = time.monotonic()
    params = {"count": "2", "interval": "0.05", **query}
    with requests.get(url, params=params, stream=True, timeout=5) as response:
        body = b"".join(response.iter_content(None))
    return time.monotonic() - start, body

took, body = first_event()
assert b"id: 2" in body and took < 0.78, (took, body)

proxy.add_toxic(type="latency", attributes={"latency": 800})
assert list(proxy.toxics()) == ["latency_downstream"]
took, body = first_event()
assert took >= 0.78 and b"id: 2" in body, took
proxy.destroy_toxic("latency_downstream")
took, _ = first_event()
assert took < 0.78, took

proxy.add_toxic(type="limit_data", name="cap", attributes={"bytes": 60})
try:
    _, body = first_event()
except requests.exceptions.RequestException:
    body = b""
assert b"id: 2" not in body, body
proxy.destroy_toxic("cap")

proxy.add_toxic(type="reset_peer", name="rst", attributes={"timeout": 0})
try:
    first_event()
    raise AssertionError("reset_peer let the request through")
except requests.exceptions.ConnectionError:
    pass
proxy.destroy_toxic("rst")

proxy.add_toxic(type="sse_idle_timeout", name="idle", attributes={"timeout": "300ms"})
start = time.monotonic()
try:
    first_event(interval="5", count="3")
except requests.exceptions.RequestException:
    pass
assert 0.28 <= time.monotonic() - start < 3, time.monotonic() - start
proxy.destroy_toxic("idle")

host, port = proxy.listen.rsplit(":", 1)
with proxy.down():
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        raise AssertionError("a disabled proxy accepted a connection")
    except ConnectionRefusedError:
        pass
took, body = first_event()
assert b"id: 2" in body

proxy.add_toxic(type="timeout", attributes={"timeout": 0})
proxy.disable()
assert server.reset()
assert server.get_proxy("events").enabled is True
assert proxy.toxics() == {}
took, body = first_event()
assert b"id: 2" in body
server.destroy_all()
assert server.proxies() == {}
print("ok")
"""


def test_toxiproxy_python_drives_sseproxy(origin_url: str) -> None:
    target = CACHE / "toxiproxy-python"
    _installed(
        target,
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "toxiproxy-python"],
    )
    upstream = origin_url.removeprefix("http://")
    with sseproxy_api() as api:
        host, port = api.url.removeprefix("http://").rsplit(":", 1)
        done = subprocess.run(
            [sys.executable, "-c", PYTHON_SCRIPT, host, port, upstream],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(target)},
        )
        kinds = {record["kind"] for record in api.journal.records}
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"
    assert {"listening", "stopped", "scenario", "opened", "closed"} <= kinds
    assert all(record.get("proxy") == "events" for record in api.journal.records)


NODE_SCRIPT = r"""
const assert = require("node:assert");
const net = require("node:net");
const http = require("node:http");
const { Toxiproxy } = require("toxiproxy-node-client");

const [apiUrl, upstream] = process.argv.slice(2);

function get(path) {  // resolves {took, body} or {took, error}
  const start = Date.now();
  return new Promise((resolve) => {
    const request = http.get(path, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ took: Date.now() - start, body }));
      response.on("error", (error) => resolve({ took: Date.now() - start, body, error }));
    });
    request.on("error", (error) => resolve({ took: Date.now() - start, error }));
    request.setTimeout(5000, () => request.destroy(new Error("timeout")));
  });
}

(async () => {
  const toxiproxy = new Toxiproxy(apiUrl);
  assert.match(await toxiproxy.getVersion(), /version/);
  await toxiproxy.reset();
  const proxy = await toxiproxy.createProxy({ name: "events", listen: "127.0.0.1:0", upstream });
  const url = `http://${proxy.listen}/events?count=2&interval=0.05`;

  let seen = await get(url);
  assert.ok(seen.body.includes("id: 2") && seen.took < 780, JSON.stringify(seen));

  const latency = await proxy.addToxic({ type: "latency", name: "slow", stream: "downstream",
    toxicity: 1, attributes: { latency: 800, jitter: 0 } });
  seen = await get(url);
  assert.ok(seen.took >= 780 && seen.body.includes("id: 2"), JSON.stringify(seen));
  await latency.remove();
  seen = await get(url);
  assert.ok(seen.took < 780, JSON.stringify(seen));

  const cut = await proxy.addToxic({ type: "limit_data", name: "cap", stream: "downstream",
    toxicity: 1, attributes: { bytes: 60 } });
  seen = await get(url);
  assert.ok(!(seen.body || "").includes("id: 2"), JSON.stringify(seen));
  await cut.remove();

  const rst = await proxy.addToxic({ type: "reset_peer", name: "rst", stream: "downstream",
    toxicity: 1, attributes: { timeout: 0 } });
  seen = await get(url);
  assert.ok(seen.error, JSON.stringify(seen));
  await rst.remove();

  await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  const [host, port] = proxy.listen.split(":");
  const refused = await new Promise((resolve) => {
    const socket = net.connect(Number(port), host);
    socket.on("connect", () => { socket.destroy(); resolve(false); });
    socket.on("error", (error) => resolve(error.code === "ECONNREFUSED"));
  });
  assert.ok(refused, "a disabled proxy accepted a connection");
  await proxy.update({ enabled: true, listen: proxy.listen, upstream });
  seen = await get(url);
  assert.ok(seen.body.includes("id: 2"), JSON.stringify(seen));

  await proxy.addToxic({ type: "timeout", name: "hold", stream: "downstream", toxicity: 1,
    attributes: { timeout: 0 } });
  await toxiproxy.reset();
  const again = await toxiproxy.get("events");
  await assert.rejects(again.getToxic("hold"), /toxic not found|404/);
  seen = await get(url);
  assert.ok(seen.body.includes("id: 2"), JSON.stringify(seen));

  await again.remove();
  assert.deepStrictEqual(Object.keys(await toxiproxy.getAll()), []);
  console.log("ok");
})().catch((error) => { console.error(error); process.exit(1); });
"""


def test_toxiproxy_node_client_drives_sseproxy(origin_url: str, tmp_path: Path) -> None:
    node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    target = CACHE / "toxiproxy-node-client"
    _installed(
        target,
        [
            npm,
            "install",
            "--prefix",
            str(target),
            "--no-audit",
            "--no-fund",
            "--silent",
            "toxiproxy-node-client",
        ],
    )
    script = tmp_path / "drive.js"
    script.write_text(NODE_SCRIPT, encoding="utf-8")
    upstream = origin_url.removeprefix("http://")
    with sseproxy_api() as api:
        done = subprocess.run(
            [node, str(script), api.url, upstream],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NODE_PATH": str(target / "node_modules")},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"
