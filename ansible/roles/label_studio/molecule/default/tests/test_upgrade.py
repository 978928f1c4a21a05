"""The upgrade from the release before (requirements/upgrade-from.yml): the scenario's prepare converged it,
wrote a project, tasks and an annotation to it and saw an upgrade whose migration failed rolled back; the
converge upgraded it to the current pins."""

from __future__ import annotations

from tests.helpers.molecule import podman_hosts, secret
from tests.helpers.upgrade import check_dumps, check_releases, read_back, versions

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-label-studio"]
PREVIOUS, CURRENT = versions("label_studio", "label_studio_version")


def test_the_current_release_serves_what_was_written_before_the_upgrade(host):
    env = {"LABEL_STUDIO_URL": "http://127.0.0.1:8080", "LABEL_STUDIO_API_KEY": secret("label_studio/api_token")}
    answer = read_back(host, "/opt/mlenv/label-studio/venv", env)
    assert answer["server"] == CURRENT
    assert answer["found"] == answer["written"]
    assert answer["found"]["tasks"] == [["broke at once", []], ["works well", [{"choices": ["positive"]}]]]


def test_the_release_before_stays_beside_the_current_one(host):
    check_releases(host, "/opt/mlenv/label-studio", PREVIOUS, CURRENT)


def test_the_database_was_dumped_before_the_upgrade(host):
    check_dumps(host, "mlenv-label-studio", PREVIOUS, CURRENT, {"labelstudio": "project"})
