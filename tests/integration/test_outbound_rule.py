"""Sinks and cameras cannot reach the platform's own services, by any alias of this host.

Against an API server process: every alias of a protected port (Prefect, MLflow, the API,
the pipeline control range) is refused with 422 for webhook, MQTT and camera configs, and the same
host on another port stays allowed (a receiver or broker on loopback is common on a line PC). At
runtime the webhook sink connects to the address it checked and follows no redirect, so a
receiver that redirects to a protected port gets nothing there.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.configs import WebhookConfig, outbound
from infra.settings import get_settings
from pipelines.sinks.webhook import WebhookSink
from tests.integration.api_server import api_server
from tests.integration.recording_server import Answer, RecordingServer
from tests.integration.test_pipeline_sinks import make_event
from tests.network import free_port

pytestmark = pytest.mark.timeout(180)


def aliases(port: int) -> list[str]:
    """Every spelling of "this machine, that port" that a resolver or the kernel reads as this machine."""
    hosts = ["127.0.0.1", "127.0.0.2", "localhost", "localhost.", "LOCALHOST", "[::1]", "[0:0:0:0:0:0:0:1]",
             "0.0.0.0", "0", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "2130706433",
             "0x7f000001", "0177.0.0.1", "127.1", "127.0.1"]
    own = sorted(str(ip) for ip in outbound.own_addresses() if not ip.is_loopback and not ip.is_link_local)
    hosts += [f"[{ip}]" if ":" in ip else ip for ip in own[:3]]
    if outbound.resolve(socket.gethostname()):
        hosts.append(socket.gethostname())
    return [f"{host}:{port}" for host in hosts]


def recorder(redirect_to: str | None = None) -> RecordingServer:
    """A loopback receiver that answers 200, or redirects every request to ``redirect_to``."""
    return RecordingServer(lambda _: Answer(307, headers={"Location": redirect_to}) if redirect_to else Answer(200))


@pytest.fixture(scope="module")
def protected() -> dict[str, int]:
    return {"Prefect": free_port(), "MLflow": free_port(), "the Geti Inspect API": free_port(),
            "a pipeline control endpoint": free_port()}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, protected: dict[str, int]) -> Iterator[str]:
    control = protected["a pipeline control endpoint"]
    env = {"INSPECT_PREFECT_API_URL": f"http://127.0.0.1:{protected['Prefect']}/api",
           "INSPECT_MLFLOW_TRACKING_URI": f"http://localhost:{protected['MLflow']}",
           "INSPECT_PORT": str(protected["the Geti Inspect API"]),
           "INSPECT_PIPELINE_CONTROL_PORTS": f"{control}-{control}"}
    with api_server(tmp_path_factory.mktemp("outbound") / "data", env) as base_url:
        yield base_url


def create(base_url: str, project_id: str, resource: str, type_name: str, config: dict) -> httpx.Response:
    return httpx.post(f"{base_url}/api/projects/{project_id}/{resource}", timeout=30,
                      json={"type": type_name, "name": "x", "config": config})


def test_every_alias_of_a_platform_port_is_refused_and_other_ports_stay_allowed(api: str, protected) -> None:
    """Every alias of every protected port as a webhook; MQTT brokers and cameras (the same rule through
    their own URL fields) with a few aliases each."""
    project_id = httpx.post(f"{api}/api/projects", json={"name": "outbound"}).json()["id"]
    tried = 0
    for service, port in protected.items():
        netlocs = aliases(port)
        configs = [("sinks", "webhook", {"url": f"http://{netloc}/hook"}) for netloc in netlocs]
        for netloc in (netlocs[2], netlocs[7], netlocs[13]):  # localhost, 0.0.0.0, decimal
            configs += [("sinks", "webhook", {"url": f"https://{netloc}/hook", "method": "PUT"}),
                        ("sinks", "mqtt", {"broker": f"mqtt://{netloc}", "topic": "t"}),
                        ("sources", "ip_camera", {"url": f"rtsp://{netloc}/stream"}),
                        ("sources", "ip_camera", {"url": f"http://{netloc}/video.mjpg"})]
        for resource, type_name, config in configs:
            refused = create(api, project_id, resource, type_name, config)
            assert refused.status_code == 422, (service, config, refused.text)
            assert f"{service} of this platform" in refused.json()["detail"], (config, refused.text)
            tried += 1
    assert tried >= 4 * (18 + 12)
    for resource in ("sinks", "sources"):
        assert httpx.get(f"{api}/api/projects/{project_id}/{resource}").json() == []  # nothing half-written
    # The same host on another port: a receiver, broker or camera on this machine is allowed.
    other = free_port()
    for netloc in (f"127.0.0.1:{other}", f"localhost:{other}", f"[::1]:{other}"):
        assert create(api, project_id, "sinks", "webhook", {"url": f"http://{netloc}/hook"}).status_code == 201
        assert create(api, project_id, "sinks", "mqtt", {"broker": f"mqtt://{netloc}", "topic": "t"}).status_code == 201
        assert create(api, project_id, "sources", "ip_camera", {"url": f"rtsp://{netloc}/s"}).status_code == 201
    # Default ports count too: mqtt:// without a port is 1883, not a platform port here.
    assert create(api, project_id, "sinks", "mqtt", {"broker": "mqtt://localhost", "topic": "t"}).status_code == 201


@pytest.fixture
def runtime_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    """This process's settings (what a pipeline's flow process reads) with Prefect on a port a server holds."""
    guarded = recorder()
    monkeypatch.setenv("INSPECT_PREFECT_PORT", str(guarded.port))
    monkeypatch.delenv("INSPECT_PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    yield guarded
    get_settings.cache_clear()
    guarded.close()


def test_the_webhook_follows_no_redirect_to_a_platform_port(runtime_settings: RecordingServer) -> None:
    guarded = runtime_settings
    redirector = recorder(redirect_to=f"http://127.0.0.1:{guarded.port}/api/deployments/filter")
    try:
        sink = WebhookSink(WebhookConfig(url=f"http://localhost:{redirector.port}/hook", retries=0, cooldown_s=0))
        with pytest.raises(RuntimeError, match="HTTP 307"):
            sink.send(make_event())
        assert redirector.connections == 1
        assert [request.headers["Host"] for request in redirector.requests] == [f"localhost:{redirector.port}"]
        assert guarded.connections == 0
        # Pointed at the protected port directly (by another alias), it connects nowhere.
        direct = WebhookSink(WebhookConfig(url=f"http://0x7f000001:{guarded.port}/x", retries=0, cooldown_s=0))
        with pytest.raises(ValueError, match="Prefect of this platform"):
            direct.send(make_event())
        assert guarded.connections == 0
    finally:
        redirector.close()


def test_the_webhook_connects_to_the_address_it_checked(runtime_settings: RecordingServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink resolves once, through the rule, and connects to that address with the URL's Host header:
    a name that the system resolver would answer differently a moment later (DNS rebinding) changes
    nothing. Here "rebind.example" exists only for the rule's resolver (no DNS server can run here),
    so a sink that resolved the name again by itself could not connect at all."""
    guarded = runtime_settings
    receiver = recorder()
    real_resolve = outbound.resolve

    def rebinding(host: str) -> list:
        return [outbound.canonical("127.0.0.1")] if host == "rebind.example" else real_resolve(host)

    monkeypatch.setattr(outbound, "resolve", rebinding)
    try:
        sink = WebhookSink(WebhookConfig(url=f"http://rebind.example:{receiver.port}/hook", retries=0, cooldown_s=0))
        sink.send(make_event())
        assert [request.headers["Host"] for request in receiver.requests] == [f"rebind.example:{receiver.port}"]
        assert guarded.connections == 0
    finally:
        receiver.close()


def test_a_broken_control_port_range_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from infra.settings import Settings

    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, pipeline_control_ports="60000-50000")
