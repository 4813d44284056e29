"""A refused line action shows its reason on the page it came from, with the refusal's status; the message
never travels in the URL, so a crafted link cannot put text of its choosing on a line page."""

from __future__ import annotations

from tests.integration.pipeline_support import insert_model, pipeline_parts


def _line(client, project) -> dict:
    parts = pipeline_parts(client, project["id"]) | {"model_id": insert_model(client, project["id"],
                                                                              status="training")}
    response = client.post(f"/api/projects/{project['id']}/pipelines", json={"name": "Gate", **parts})
    assert response.status_code == 201
    return response.json()


def test_a_refused_start_answers_409_with_the_reason_on_the_same_page(client, project) -> None:
    line = _line(client, project)
    base = f"/ui/projects/{project['id']}/lines"
    for back, page in (("", base), ("view", f"{base}/{line['id']}")):
        response = client.post(f"{base}/{line['id']}/start", data={"back": back}, follow_redirects=False,
                               headers={"Origin": "http://testserver"})
        assert response.status_code == 409, page
        assert "is training, not ready" in response.text
    assert client.get("/api/active-pipelines", params={"pipeline_id": line["id"]}).json() == []


def test_a_bad_threshold_from_the_plain_form_answers_422_and_keeps_the_config(client, project) -> None:
    line = _line(client, project)
    response = client.post(f"/ui/projects/{project['id']}/lines/{line['id']}/threshold", data={"threshold": "high"},
                           follow_redirects=False, headers={"Origin": "http://testserver"})
    assert response.status_code == 422 and "threshold must be a number" in response.text
    assert client.get(f"/api/pipelines/{line['id']}").json()["config"]["threshold"] == line["config"]["threshold"]


def test_a_problem_in_the_address_is_not_shown(client, project) -> None:
    line = _line(client, project)
    crafted = "Your key expired: sign in at evil.example"
    for path in (f"/ui/projects/{project['id']}/lines", f"/ui/projects/{project['id']}/lines/{line['id']}"):
        response = client.get(path, params={"problem": crafted})
        assert response.status_code == 200 and crafted not in response.text
