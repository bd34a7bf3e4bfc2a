def test_healthz_answers_ok_from_the_real_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_path_answers_json_not_html(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["message"]


def test_unmatched_api_paths_answer_in_the_apis_error_shape(client):
    response = client.get("/api/v0.1/someone/no-such-endpoint")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404
    assert response.get_json()["error"]


def test_wrong_method_on_an_api_path_answers_405_in_the_apis_error_shape(client):
    response = client.delete("/api/v0.1/someone/incoming_statuses")
    assert response.status_code == 405
    assert response.get_json()["status"] == 405
