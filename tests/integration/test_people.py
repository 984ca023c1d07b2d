"""People signed in through the user pool, over real HTTP against the local stack.

Real tokens from the emulator's pool (built from infra/template.yaml), verified by the packaged
authorizer against the emulator's key set exactly as a deployed stage verifies them against
Cognito's: sign-up with the e-mailed code, sign-in, refresh, reset, sign-out, disabling, and
tenant isolation with tokens as with keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.localstack import ROOT, RunningStack
from tests.people import code_for, pool_of

PASSWORD = "Correct-horse-42"


@pytest.fixture(scope="module")
def pool(local_stack: RunningStack) -> dict[str, Any]:
    return pool_of(local_stack)


def sign_in(pool: dict[str, Any], email: str, password: str) -> dict[str, str]:
    answer = pool["cognito"].initiate_auth(ClientId=pool["client_id"], AuthFlow="USER_PASSWORD_AUTH",
                                           AuthParameters={"USERNAME": email, "PASSWORD": password})
    result: dict[str, str] = answer["AuthenticationResult"]
    return result


def as_person(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def users_tool(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in stack.env.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "tools.users", "--local", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_demo_person_works_in_the_demo_keys_tenant(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    demo = pool["demo"]
    assert demo["tenant"] == "alpha" and demo["email"] in local_stack.log()
    person = as_person(sign_in(pool, demo["email"], demo["password"])["AccessToken"])
    created = person.post(f"{local_stack.api_url}/items", json={"name": "made by a person"}, timeout=10)
    assert created.status_code == 201, created.text
    # The tenant's API key sees what the person made, and the other way round.
    item_id = created.json()["id"]
    assert local_stack.session("alpha").get(f"{local_stack.api_url}/items/{item_id}", timeout=10).status_code == 200
    by_key = local_stack.session("alpha").post(f"{local_stack.api_url}/items", json={"name": "made by a key"}, timeout=10)
    assert person.get(f"{local_stack.api_url}/items/{by_key.json()['id']}", timeout=10).status_code == 200


def test_a_token_of_one_tenant_reaches_nothing_of_another(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    api = local_stack.api_url
    theirs = local_stack.session("beta").post(f"{api}/items", json={"name": "beta's"}, timeout=10).json()
    demo = pool["demo"]
    person = as_person(sign_in(pool, demo["email"], demo["password"])["AccessToken"])
    assert person.get(f"{api}/items/{theirs['id']}", timeout=10).status_code == 404
    replaced = person.put(f"{api}/items/{theirs['id']}", json={"name": "taken over"}, timeout=10)
    assert replaced.status_code == 404
    assert person.delete(f"{api}/items/{theirs['id']}", timeout=10).status_code == 404
    assert theirs["id"] not in [i["id"] for i in person.get(f"{api}/items", params={"limit": 100}, timeout=10).json()["items"]]
    assert local_stack.session("beta").get(f"{api}/items/{theirs['id']}", timeout=10).json()["name"] == "beta's"


def test_an_invited_person_acts_for_the_tenant_they_were_invited_to(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    api = local_stack.api_url
    email = "invited@example.com"
    invited = users_tool(local_stack, "invite", email, "--tenant", "beta", "--password", PASSWORD)
    assert invited.returncode == 0, invited.stderr
    assert json.loads(invited.stdout) == {"email": email, "tenant": "beta", "action": "invited"}
    listed = users_tool(local_stack, "list", "beta")
    assert email in listed.stdout
    theirs = local_stack.session("beta").post(f"{api}/items", json={"name": "for the invited"}, timeout=10).json()
    person = as_person(sign_in(pool, email, PASSWORD)["AccessToken"])
    assert person.get(f"{api}/items/{theirs['id']}", timeout=10).status_code == 200
    assert users_tool(local_stack, "invite", email, "--tenant", "bad#tenant").returncode != 0


def test_sign_up_needs_the_emailed_code_and_gives_a_tenant_of_ones_own(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    cognito, client = pool["cognito"], pool["client_id"]
    email = "newcomer@example.com"
    cognito.sign_up(ClientId=client, Username=email, Password=PASSWORD, UserAttributes=[{"Name": "email", "Value": email}])
    code = code_for(local_stack, email, "sign-up")
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(cognito.exceptions.CodeMismatchException):
        cognito.confirm_sign_up(ClientId=client, Username=email, ConfirmationCode=wrong)
    cognito.confirm_sign_up(ClientId=client, Username=email, ConfirmationCode=code)
    person = as_person(sign_in(pool, email, PASSWORD)["AccessToken"])
    listed = person.get(f"{local_stack.api_url}/items", timeout=10)
    assert listed.status_code == 200 and listed.json()["items"] == []  # nothing of alpha or beta
    assert person.post(f"{local_stack.api_url}/items", json={"name": "mine"}, timeout=10).status_code == 201


def test_a_forgotten_password_is_reset_with_the_emailed_code(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    cognito, client = pool["cognito"], pool["client_id"]
    email = "forgetful@example.com"
    assert users_tool(local_stack, "invite", email, "--tenant", "alpha", "--password", PASSWORD).returncode == 0
    cognito.forgot_password(ClientId=client, Username=email)
    code = code_for(local_stack, email, "password reset")
    with pytest.raises(cognito.exceptions.CodeMismatchException):
        cognito.confirm_forgot_password(ClientId=client, Username=email, ConfirmationCode="12345x", Password="Another-pass-77")
    cognito.confirm_forgot_password(ClientId=client, Username=email, ConfirmationCode=code, Password="Another-pass-77")
    token = sign_in(pool, email, "Another-pass-77")["AccessToken"]
    assert as_person(token).get(f"{local_stack.api_url}/items", timeout=10).status_code == 200


def test_a_refreshed_token_works(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    demo = pool["demo"]
    first = sign_in(pool, demo["email"], demo["password"])
    refreshed = pool["cognito"].get_tokens_from_refresh_token(ClientId=pool["client_id"], RefreshToken=first["RefreshToken"])
    result = refreshed["AuthenticationResult"]
    assert result["RefreshToken"] and result["AccessToken"] != first["AccessToken"]
    assert as_person(result["AccessToken"]).get(f"{local_stack.api_url}/items", timeout=10).status_code == 200


def test_signed_out_and_disabled_people_are_refused(local_stack: RunningStack, pool: dict[str, Any]) -> None:
    """Tokens not yet seen by the gateway (nothing cached for them) are refused at once: 401."""
    cognito = pool["cognito"]
    email = "leaving@example.com"
    assert users_tool(local_stack, "invite", email, "--tenant", "alpha", "--password", PASSWORD).returncode == 0
    signed_out = sign_in(pool, email, PASSWORD)["AccessToken"]
    cognito.global_sign_out(AccessToken=signed_out)
    answer = as_person(signed_out).get(f"{local_stack.api_url}/items", timeout=10)
    assert answer.status_code == 401
    assert answer.json()["type"] == "/problems/unauthorized"

    token = sign_in(pool, email, PASSWORD)["AccessToken"]
    disabled = users_tool(local_stack, "disable", email)
    assert disabled.returncode == 0, disabled.stderr
    assert as_person(token).get(f"{local_stack.api_url}/items", timeout=10).status_code == 401


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-10],  # truncated signature
        lambda t: t.rsplit(".", 1)[0] + ".AAAA",  # another signature
        lambda t: t + "A" * 9000,  # oversized
        lambda t: "eyJhbGciOiJub25lIiwia2lkIjoiZHVtbXkifQ." + t.split(".")[1] + ".",  # alg none
    ],
)
def test_bad_tokens_are_401_problems(local_stack: RunningStack, pool: dict[str, Any], mangle: Any) -> None:
    demo = pool["demo"]
    token = mangle(sign_in(pool, demo["email"], demo["password"])["AccessToken"])
    answer = as_person(token).get(f"{local_stack.api_url}/items", timeout=10)
    assert answer.status_code == 401, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.json()["status"] == 401
