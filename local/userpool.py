"""The stage's Cognito user pool in the local emulator, from ``infra/template.yaml``.

Two things moto lacks, supplied here for the local stack (and the tests that run it) only:

1. **The pool from the template.** moto's CloudFormation skips ``AWS::Cognito::UserPool`` and
   ``AWS::Cognito::UserPoolClient`` ("No Moto CloudFormation support"), so the stack has no
   ``UserPoolId`` output locally. ``ensure`` creates the same pool and app client through the
   Cognito API, from the template's own properties (``CreateUserPool`` and
   ``CreateUserPoolClient`` take the resource properties under the same names, except the pool's
   name: AWS CloudFormation User Guide, AWS::Cognito::UserPool and AWS::Cognito::UserPoolClient).

2. **Codes a person would get by e-mail** (``Mail``, WSGI middleware in front of moto). A pool
   sends a confirmation code on ``SignUp`` and ``ResendConfirmationCode`` and a reset code on
   ``ForgotPassword``, and ``ConfirmSignUp`` / ``ConfirmForgotPassword`` refuse a wrong one with
   ``CodeMismatchException`` (Amazon Cognito API Reference: SignUp, ConfirmSignUp,
   ForgotPassword, ConfirmForgotPassword). moto sends nothing and accepts any code. Here each
   code is a fresh 6-digit number, written to the stack's log and kept for the Operations page
   (``recent_codes``), and checked before moto sees the confirmation. Also
   ``GetTokensFromRefreshToken`` (the refresh call of a client with refresh-token rotation, API
   Reference: GetTokensFromRefreshToken), which moto does not have, is answered through moto's
   ``InitiateAuth`` with ``REFRESH_TOKEN_AUTH``: new access and ID tokens, and the same refresh
   token back (moto cannot issue a new one; a deployed pool does).

Never part of a deployed stage: there the pool sends its own e-mails.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from infra import stack

_TARGET = "AWSCognitoIdentityProviderService."
_POOL_PROPERTIES = ("Policies", "DeletionProtection", "AutoVerifiedAttributes", "UsernameAttributes",
                    "UsernameConfiguration", "AccountRecoverySetting", "AdminCreateUserConfig", "MfaConfiguration")
_CLIENT_PROPERTIES = ("GenerateSecret", "ExplicitAuthFlows", "AccessTokenValidity", "IdTokenValidity",
                      "RefreshTokenValidity", "TokenValidityUnits", "AuthSessionValidity", "EnableTokenRevocation",
                      "PreventUserExistenceErrors", "RefreshTokenRotation", "ReadAttributes", "WriteAttributes")


class UnsupportedTemplate(ValueError):
    """The template uses an intrinsic function this module does not resolve."""


def _template(path: Path) -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    loaded: dict[str, Any] = cfn_yaml.load(str(path))
    return loaded


def _resolver(template: dict[str, Any], parameters: dict[str, str]) -> Callable[[Any], Any]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), = node.items()
            if function == "Ref" and argument in values:
                return values[argument]
            if function == "Fn::Sub" and isinstance(argument, str):
                text = argument
                for name, value in values.items():
                    text = text.replace("${" + name + "}", value)
                if "${" in text:
                    raise UnsupportedTemplate(f"cannot resolve {argument!r}")
                return text
            if function == "Fn::If":
                condition, when_true, when_false = argument
                return resolve(when_true if condition_holds(condition) else when_false)
            if function.startswith("Fn::") or function == "Ref":
                raise UnsupportedTemplate(f"{function} {argument!r}")
        return {key: resolve(value) for key, value in node.items()}

    def condition_holds(name: str) -> bool:
        definition = template.get("Conditions", {}).get(name)
        if not isinstance(definition, dict) or list(definition) != ["Fn::Equals"]:
            raise UnsupportedTemplate(f"condition {name}")
        left, right = (resolve(side) for side in definition["Fn::Equals"])
        return bool(left == right)

    return resolve


def ensure(cognito: Any, stage: str, parameters: dict[str, str] | None = None,
           template: Path = stack.TEMPLATE) -> dict[str, str]:
    """The pool and app client of ``stage`` (created on first call); returns the stack's two outputs."""
    document = _template(template)
    resolve = _resolver(document, {"Stage": stage, **(parameters or {})})
    resources = document["Resources"]
    pool = resolve(resources["UserPool"]["Properties"])
    # Its UserPoolId refers to the pool above, created here.
    client = resolve({k: v for k, v in resources["UserPoolClient"]["Properties"].items() if k != "UserPoolId"})
    name = pool["UserPoolName"]
    existing = [p["Id"] for p in cognito.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == name]
    if existing:
        pool_id = existing[0]
    else:
        pool_id = cognito.create_user_pool(
            PoolName=name, **{key: pool[key] for key in _POOL_PROPERTIES if key in pool}
        )["UserPool"]["Id"]
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    found = [c["ClientId"] for c in clients if c["ClientName"] == client["ClientName"]]
    client_id = found[0] if found else cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName=client["ClientName"],
        **{key: client[key] for key in _CLIENT_PROPERTIES if key in client},
    )["UserPoolClient"]["ClientId"]
    return {"UserPoolId": pool_id, "UserPoolClientId": client_id}


class Mail:
    """WSGI middleware: the pool's e-mailed codes, made and checked here (see the module's 2.)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], log: Callable[[str], None] = print, keep: int = 50) -> None:
        self.app = app
        self.log = log
        self._codes: dict[tuple[str, str], str] = {}
        self._recent: deque[dict[str, str]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def recent_codes(self) -> list[dict[str, str]]:
        """The latest codes sent, newest first: ``{"email", "purpose", "code"}``."""
        with self._lock:
            return list(reversed(self._recent))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target[len(_TARGET):] if target.startswith(_TARGET) else ""
        handler = getattr(self, f"_on_{operation}", None) if environ.get("REQUEST_METHOD") == "POST" else None
        if handler is None:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or -1)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return self._forward(environ, body, start_response)
        answer: tuple[int, dict[str, Any]] | None = handler(environ, request)
        if answer is None:
            return self._forward(environ, json.dumps(request).encode(), start_response)
        status, payload = answer
        data = json.dumps(payload).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", [
            ("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data))),
            ("Access-Control-Allow-Origin", "*"),
        ])
        return [data]

    # -- the operations ----------------------------------------------------------------------
    def _on_SignUp(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        status, answer = self._call(environ, "SignUp", request)
        if status == 200:
            self._send(request, "sign-up")
        return status, answer

    def _on_ResendConfirmationCode(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        self._send(request, "sign-up")
        return 200, {"CodeDeliveryDetails": _delivery(request)}

    def _on_ConfirmSignUp(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        return self._check(request, "sign-up")

    def _on_ForgotPassword(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        status, answer = self._call(environ, "ForgotPassword", request)
        if status == 200:
            self._send(request, "password reset")
        return status, answer

    def _on_ConfirmForgotPassword(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        return self._check(request, "password reset")

    def _on_GetTokensFromRefreshToken(self, environ: dict[str, Any], request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:  # noqa: N802
        refresh = str(request.get("RefreshToken", ""))
        status, answer = self._call(environ, "InitiateAuth", {
            "ClientId": request.get("ClientId", ""), "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {"REFRESH_TOKEN": refresh},
        })
        if status == 200 and isinstance(answer.get("AuthenticationResult"), dict):
            answer["AuthenticationResult"].setdefault("RefreshToken", refresh)
        return status, answer

    # -- helpers -----------------------------------------------------------------------------
    def _send(self, request: dict[str, Any], purpose: str) -> None:
        email = _user(request)
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            self._codes[(str(request.get("ClientId", "")), email)] = code
            self._recent.append({"email": email, "purpose": purpose, "code": code})
        self.log(f"[mail] {purpose} code for {email}: {code} (the local stack shows codes instead of e-mailing them)")

    def _check(self, request: dict[str, Any], purpose: str) -> tuple[int, dict[str, Any]] | None:
        key = (str(request.get("ClientId", "")), _user(request))
        with self._lock:
            expected = self._codes.get(key)
            if expected is not None and secrets.compare_digest(expected, str(request.get("ConfirmationCode", ""))):
                del self._codes[key]
                return None
        return 400, {"__type": "CodeMismatchException", "message": f"Invalid {purpose} code provided, please try again."}

    def _call(self, environ: dict[str, Any], operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from werkzeug.test import EnvironBuilder

        headers = {"X-Amz-Target": _TARGET + operation, "Content-Type": "application/x-amz-json-1.1"}
        for key, name in (("HTTP_HOST", "Host"), ("HTTP_AUTHORIZATION", "Authorization")):
            if key in environ:
                headers[name] = environ[key]
        inner = EnvironBuilder(path="/", method="POST", headers=list(headers.items()), data=json.dumps(request)).get_environ()
        status: list[str] = []
        body = self.app(inner, lambda line, *_: status.append(line))
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return int(status[0].split()[0]), json.loads(data or b"{}")

    def _forward(self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _user(request: dict[str, Any]) -> str:
    return str(request.get("Username", "")).strip().lower()


def _delivery(request: dict[str, Any]) -> dict[str, str]:
    return {"Destination": _user(request), "DeliveryMedium": "EMAIL", "AttributeName": "email"}
