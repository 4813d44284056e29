"""Browser addresses of the Prefect and MLflow pages behind a model or a job."""

from __future__ import annotations

from infra.settings import Settings
from infra.ui_links import ui_links


def test_supervised_uis_on_the_host_the_client_used() -> None:
    links = ui_links(Settings(prefect_port=4300, mlflow_port=5100, port=8100), "inspect.plant.local")
    assert links.prefect_flow_run("3f2a") == "http://inspect.plant.local:4300/runs/flow-run/3f2a"
    assert links.mlflow_run("7d1c") == "http://inspect.plant.local:5100/#/runs/7d1c"
    assert links.api_model("9e") == "http://inspect.plant.local:8100/api/models/9e"
    assert ui_links(Settings(), "::1").prefect_ui == "http://[::1]:4200"


def test_without_a_client_host_the_bind_address_or_loopback() -> None:
    assert ui_links(Settings(host="10.0.0.5")).mlflow_ui == "http://10.0.0.5:5000"
    assert ui_links(Settings(host="0.0.0.0")).mlflow_ui == "http://127.0.0.1:5000"


def test_external_servers_and_configured_addresses_win() -> None:
    external = Settings(prefect_api_url="http://prefect.plant:4200/api", mlflow_tracking_uri="http://mlflow.plant:5000/")
    links = ui_links(external, "ignored")
    assert (links.prefect_ui, links.mlflow_ui) == ("http://prefect.plant:4200", "http://mlflow.plant:5000")
    public = Settings(prefect_api_url="http://10.0.0.2:4200/api", prefect_ui_url="https://prefect.example.com/",
                      mlflow_ui_url="https://mlflow.example.com")
    links = ui_links(public, "ignored")
    assert links.prefect_flow_run("1") == "https://prefect.example.com/runs/flow-run/1"
    assert links.mlflow_run("2") == "https://mlflow.example.com/#/runs/2"
