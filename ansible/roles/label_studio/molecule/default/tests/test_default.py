"""The label_studio role on a real systemd host, used through its API: storage in, annotation, storage out."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.helpers.hostpython import http_status, run_python
from tests.helpers.molecule import podman_hosts, secret

testinfra_hosts = podman_hosts()
journal_units = ["mlenv-label-studio"]
SERVICE = "mlenv-label-studio"
BASE = "http://127.0.0.1:8080"
TOOLS_PYTHON = "/opt/mlenv/s3-tools/bin/python"


API_CALL = """
import json, os, urllib.error, urllib.request
body = os.environ.get("BODY")
request = urllib.request.Request(os.environ["URL"], method=os.environ["METHOD"],
                                 data=body.encode() if body else None,
                                 headers={"Authorization": "Token " + os.environ["TOKEN"],
                                          "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
        print(json.dumps({"status": response.status, "body": json.loads(text) if text else None}))
except urllib.error.HTTPError as err:
    print(json.dumps({"status": err.code, "body": err.read().decode()[:500]}))
"""


def api(host, method: str, path: str, body: object = None, *, token: str = "") -> dict:
    env = {"URL": f"{BASE}/api/{path}", "METHOD": method, "TOKEN": token or secret("label_studio/api_token")}
    if body is not None:
        env["BODY"] = json.dumps(body)
    return run_python(host, "python3", API_CALL, env)


S3 = """
import json, os, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.2:8333", region_name="us-east-1")
if os.environ.get("PUT_KEY"):
    s3.put_object(Bucket="label-studio", Key=os.environ["PUT_KEY"], Body=os.environ["PUT_BODY"].encode())
listing = s3.list_objects_v2(Bucket="label-studio", Prefix=os.environ["PREFIX"]).get("Contents", [])
print(json.dumps([o["Key"] for o in listing]))
"""


def s3(host, prefix: str, put: tuple[str, str] | None = None) -> list[str]:
    env = {
        "AWS_ACCESS_KEY_ID": secret("object_store/label-studio.access_key"),
        "AWS_SECRET_ACCESS_KEY": secret("object_store/label-studio.secret_key"),
        "PREFIX": prefix,
    }
    if put:
        env.update(PUT_KEY=put[0], PUT_BODY=put[1])
    return run_python(host, TOOLS_PYTHON, S3, env)


@pytest.fixture(scope="module")
def project(host) -> dict:
    projects = api(host, "GET", "projects?page_size=100")["body"]["results"]
    return next(p for p in projects if p["title"] == "Review sentiment")


def storage(host, kind: str, project_id: int) -> dict:
    path = "storages/s3" if kind == "import" else "storages/export/s3"
    return api(host, "GET", f"{path}?project={project_id}")["body"][0]


def test_service_runs_as_its_own_user_on_loopback(host):
    assert host.service(SERVICE).is_running and host.service(SERVICE).is_enabled
    assert host.check_output(f"ps -o user= -p $(systemctl show -p MainPID --value {SERVICE})") == "labelstudio"
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening


@pytest.mark.parametrize("name", ["labels.mlenv.test:8443", "labels.mlenv.test"])
def test_public_host_name_is_allowed_with_and_without_port(host, name):
    assert http_status(host, f"{BASE}/health/", headers={"Host": name}) == 200


def test_other_host_names_are_refused(host):
    assert http_status(host, f"{BASE}/health/", headers={"Host": "evil.example.com"}) == 400


def test_anonymous_api_request_is_refused(host):
    assert http_status(host, f"{BASE}/api/projects") == 401


SIGNUP = """
import http.cookiejar, json, re, urllib.error, urllib.parse, urllib.request
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = opener.open("http://127.0.0.1:8080/user/signup/", timeout=30).read().decode()
form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
cookie = next(c.value for c in jar if c.name == "csrftoken")
data = urllib.parse.urlencode({"csrfmiddlewaretoken": form_token, "email": "intruder@example.com",
                               "password": "a-long-enough-password-1", "how_find_us": "", "allow_newsletters": ""})
request = urllib.request.Request("http://127.0.0.1:8080/user/signup/", data=data.encode(),
                                 headers={"Cookie": f"csrftoken={cookie}", "Referer": "http://127.0.0.1:8080/user/signup/"})
try:
    status, body = opener.open(request, timeout=30).status, ""
except urllib.error.HTTPError as err:
    status, body = err.code, err.read().decode()
print(json.dumps({"status": status, "csrf_failure": "CSRF verification failed" in body}))
"""


def test_a_client_account_has_a_token_of_its_own(host):
    token = secret("label_studio/users/ci@mlenv.test.api_token")
    assert token != secret("label_studio/api_token")
    me = api(host, "GET", "current-user/whoami", token=token)
    assert me["status"] == 200 and me["body"]["email"] == "ci@mlenv.test", me
    # A member of the administrator's organisation: it sees the role's projects.
    titles = [p["title"] for p in api(host, "GET", "projects?page_size=100", token=token)["body"]["results"]]
    assert "Review sentiment" in titles
    assert api(host, "GET", "current-user/whoami", token="0" * 40)["status"] == 401


def test_a_client_account_is_a_plain_member_with_one_token(host):
    # `label-studio init` would have made it staff and superuser; the role's accounts script does not.
    sql = (
        "SELECT u.is_superuser, u.is_staff, count(t.key) FROM htx_user u LEFT JOIN authtoken_token t "
        "ON t.user_id = u.id WHERE u.email = 'ci@mlenv.test' GROUP BY 1, 2"
    )
    assert host.check_output(f"runuser -u postgres -- psql -XAt -d labelstudio -c {sql!r}") == "f|f|1"


def test_no_secret_of_the_initialisation_is_readable_by_others(host):
    for name in ("init.env", "label-studio.env"):
        found = host.file(f"/etc/mlenv-label-studio/{name}")
        assert (found.user, found.mode) == ("root", 0o600), name


def test_signup_without_an_invitation_is_refused(host):
    answer = run_python(host, "python3", SIGNUP)
    assert answer == {"status": 403, "csrf_failure": False}
    users = api(host, "GET", "users")["body"]
    assert "intruder@example.com" not in [user["email"] for user in users]


def test_role_created_the_project_with_import_and_export_storage(host, project):
    assert storage(host, "import", project["id"])["prefix"] == "reviews/tasks/"
    assert storage(host, "export", project["id"])["prefix"] == "reviews/annotations/"


def test_tasks_from_the_bucket_are_annotated_and_exported_to_the_bucket(host, project):
    tasks = [{"text": "great model"}, {"text": "slow training"}]
    s3(host, "reviews/tasks/", put=("reviews/tasks/batch-1.json", json.dumps(tasks)))
    importer = storage(host, "import", project["id"])
    assert api(host, "POST", f"storages/s3/{importer['id']}/sync")["status"] == 200
    # Which keys it was given, without them (a rotation gives the new ones to a storage whose mark differs).
    assert re.fullmatch(r"mlenv keys [0-9a-f]{16}", importer["description"]), importer["description"]
    deadline = time.monotonic() + 60
    imported: list = []
    while time.monotonic() < deadline and len(imported) < 2:
        imported = api(host, "GET", f"tasks?project={project['id']}")["body"]["tasks"]
        time.sleep(1)
    assert sorted(t["data"]["text"] for t in imported) == ["great model", "slow training"]

    result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}}]
    created = api(host, "POST", f"tasks/{imported[0]['id']}/annotations", {"result": result})
    assert created["status"] == 201, created

    exporter = storage(host, "export", project["id"])
    assert api(host, "POST", f"storages/export/s3/{exporter['id']}/sync")["status"] == 200
    deadline = time.monotonic() + 60
    exported: list[str] = []
    while time.monotonic() < deadline and not exported:
        exported = s3(host, "reviews/annotations/")
        time.sleep(1)
    assert exported, "no annotation reached the bucket"


def test_ssrf_guard_refuses_storage_anywhere_but_the_object_store(host, project):
    body = {
        "project": project["id"],
        "bucket": "x",
        "s3_endpoint": "http://10.20.30.40:9000",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    refused = api(host, "POST", "storages/s3/validate", body)
    assert refused["status"] == 403
    assert "URL resolves to a reserved network address (block: 10.0.0.0/8)" in refused["body"]
    # The rest of the loopback network stays refused: the exemption is the object store's own address.
    for elsewhere in ("http://127.0.0.1:8333", "http://127.0.0.1:9333", "http://127.0.0.4:8333"):
        refused = api(host, "POST", "storages/s3/validate", {**body, "s3_endpoint": elsewhere})
        assert refused["status"] == 403, (elsewhere, refused)
        assert "URL resolves to a reserved network address (block: 127." in refused["body"], refused
    # The object store itself is let through: the same request to it passes the guard.
    allowed = api(host, "POST", "storages/s3/validate", {**body, "s3_endpoint": "http://127.0.0.2:8333"})
    assert "reserved network address" not in str(allowed["body"])


def test_secrets_are_private(host):
    env = host.file("/etc/mlenv-label-studio/label-studio.env")
    assert (env.user, env.mode) == ("root", 0o600)
    assert host.file("/var/lib/mlenv-label-studio").mode == 0o700
    unit = host.file(f"/etc/systemd/system/{SERVICE}.service").content_string
    assert "POSTGRE_PASSWORD" not in unit
    for setting in ("COLLECT_ANALYTICS=false", "LATEST_VERSION_CHECK=false", "SENTRY_DSN=", "DISABLE_SIGNUP"):
        assert setting in unit


def test_restarts_by_itself_after_kill_9(host):
    before = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    host.run(f"systemctl kill --signal=KILL {SERVICE}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and http_status(host, f"{BASE}/health/") != 200:
        time.sleep(2)
    assert host.check_output(f"systemctl show -p MainPID --value {SERVICE}") not in (before, "0")
    assert http_status(host, f"{BASE}/health/") == 200
