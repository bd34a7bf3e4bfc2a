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


MAX_URL = 4000


def _url(path: str, length: int) -> str:
    """`path` with a query string padding it to `length` characters."""
    return f"{path}?pad={'x' * (length - len(path) - len('?pad='))}"


def test_a_url_at_the_limit_is_served(client):
    url = _url("/healthz", MAX_URL)
    assert len(url) == MAX_URL
    assert client.get(url).status_code == 200


def test_a_url_over_the_limit_is_414_in_json_not_a_servers_html_page(client):
    response = client.get(_url("/healthz", MAX_URL + 1))
    assert response.status_code == 414
    assert response.get_json() == {"message": "The URL is longer than 4000 characters."}


def test_a_url_over_the_limit_on_the_api_is_414_in_the_apis_error_shape(client):
    response = client.get(_url("/api/v0.1/someone/incoming_statuses", 5000))
    assert response.status_code == 414
    assert response.get_json() == {"status": 414, "error": "The URL is longer than 4000 characters."}


def test_a_long_path_counts_as_well_as_a_long_query(client):
    response = client.delete("/heroku/resources/" + "a" * MAX_URL)
    assert response.status_code == 414
    assert response.is_json and response.get_json()["message"]
