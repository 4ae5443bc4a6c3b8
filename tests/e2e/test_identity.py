"""Adopting an existing app's users and tokens, against real servers: Django SimpleJWT tokens, Firebase-shaped ID
tokens from a real JWKS endpoint (rotated during the test), the provisioning API and the import."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import open_socket, running_server, seed_assignment
from tests.e2e.test_errors_and_access import error_of
from tests.fixtures.keyserver import ec_key, key_server, rsa_key
from tests.fixtures.waiting import eventually

DJANGO_SECRET = "django-insecure-" + "k" * 40
API_KEY = "wc-admin-" + "a" * 40
PROJECT = "demo-workcast"
FIREBASE_ISSUER = f"https://securetoken.google.com/{PROJECT}"


def simplejwt(user_id: int, token_type: str = "access", **extra) -> str:
    """A token as django-rest-framework-simplejwt makes it (HS256 with the Django SECRET_KEY)."""
    now = int(time.time())
    claims = {"token_type": token_type, "exp": now + 300, "iat": now, "jti": "5f0e", "user_id": user_id, **extra}
    return jwt.encode(claims, DJANGO_SECRET, algorithm="HS256")


def firebase_claims(uid: str, **extra) -> dict:
    now = int(time.time())
    return {
        "iss": FIREBASE_ISSUER,
        "aud": PROJECT,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "phone"},
        **extra,
    }


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


ADMIN = {"Authorization": f"Bearer {API_KEY}"}


async def scenario_one(server, http, seeker_token: str, provider_token: str, provider_id: int) -> None:
    """The seed's scenario 1: assign, the provider hears it and accepts, the seeker hears the answer."""
    async with (
        open_socket(server, "/ws/work/provider/", provider_token) as provider_app,
        open_socket(server, "/ws/work/seeker/", seeker_token) as seeker_app,
    ):
        r = await http.post(
            "/api/1/profiles/assign-work/", json=seed_assignment(provider_id), headers=bearer(seeker_token)
        )
        assert r.status_code == 201, r.text
        assert r.json()["data"]["websocket_sent"] is True
        offer = await provider_app.receive()
        assert offer["type"] == "work_assigned" and offer["work_id"] == r.json()["data"]["work_order_id"]
        await provider_app.send({"type": "work_response", "work_id": offer["work_id"], "accepted": True})
        assert (await provider_app.receive())["status"] == "accepted"
        answer = await seeker_app.receive()
        assert answer["type"] == "work_accepted" and answer["work_id"] == offer["work_id"]
        r = await http.post(f"/api/1/profiles/work-orders/{offer['work_id']}/complete/", headers=bearer(provider_token))
        assert r.status_code == 200 and r.json()["data"]["status"] == "completed"
        done = await seeker_app.receive()
        assert done["type"] == "work_completed" and done["status"] == "completed"


async def test_django_simplejwt_tokens_drive_the_seed_scenario(tmp_path):
    env = {
        "WORKCAST_DATA_DIR": str(tmp_path),
        "AUTH_PRESET": "simplejwt",
        "JWT_SECRET": DJANGO_SECRET,
        "ADMIN_API_KEYS": API_KEY,
    }
    with running_server(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            # The Django backend provisions its users 41 (seeker) and 42 (provider).
            r = await http.put(
                "/api/1/admin/profiles/41", json={"role": "seeker", "name": "Sam", "mobile": "900"}, headers=ADMIN
            )
            assert r.status_code == 201
            provider = {"role": "provider", "name": "Pia", "mobile": "800", "is_active_for_work": True}
            r = await http.put("/api/1/admin/profiles/42", json=provider, headers=ADMIN)
            assert r.status_code == 201
            provider_id = r.json()["data"]["id"]
            r = await http.put("/api/1/admin/profiles/42", json=provider | {"name": "Pia P."}, headers=ADMIN)
            assert r.status_code == 200 and r.json()["data"]["name"] == "Pia P."

            me = await http.get("/api/1/profiles/me/", headers=bearer(simplejwt(42)))
            assert me.status_code == 200 and me.json()["data"]["id"] == provider_id
            assert me.json()["data"]["external_id"] == "42"
            refresh = await http.get("/api/1/profiles/me/", headers=bearer(simplejwt(42, token_type="refresh")))
            error_of(refresh, 401, "not_authenticated")
            error_of(await http.get("/api/1/profiles/me/", headers=bearer(simplejwt(43))), 401, "unknown_user")
            await scenario_one(server, http, simplejwt(41), simplejwt(42), provider_id)


@pytest.fixture
def firebase_keys():
    with key_server() as keys:
        keys.publish(rsa_key("key-1"))
        yield keys


def firebase_env(tmp_path, keys, **extra) -> dict:
    return {
        "WORKCAST_DATA_DIR": str(tmp_path),
        "AUTH_PRESET": "firebase",
        "FIREBASE_PROJECT_ID": PROJECT,
        "JWT_JWKS_URL": keys.url,  # Google's, in production
        "ADMIN_API_KEYS": API_KEY,
        "AUTH_TIMEOUT_SECONDS": "2",
        **extra,
    }


async def test_firebase_id_tokens_drive_the_seed_scenario_for_imported_users(tmp_path, firebase_keys):
    key = firebase_keys.published[0]
    seeker_uid, provider_uid = "aB3dE5fG7hI9jK1lM3nO5pQ7rS9t", "zY8xW6vU4tS2rQ0pO8nM6lK4jI2h"
    lines = [
        {"external_id": seeker_uid, "role": "seeker", "name": "Sam", "mobile": "+34 600"},
        {"external_id": provider_uid, "role": "provider", "name": "Pia", "mobile": "+34 601",
         "is_active_for_work": True, "latitude": 40.4, "longitude": -3.7, "fcm_token": "pia-phone"},
        {"external_id": "broken", "role": "wizard", "name": "Nope"},
        "not json at all",
        {"external_id": "x" * 129, "role": "seeker", "name": "Long"},
    ]  # fmt: skip
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    with running_server(firebase_env(tmp_path, firebase_keys)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            wrong_type = await http.post(
                "/api/1/admin/profiles/import", content=body, headers=ADMIN | {"Content-Type": "application/json"}
            )
            error_of(wrong_type, 415, "unsupported_media_type")
            r = await http.post(
                "/api/1/admin/profiles/import", content=body, headers=ADMIN | {"Content-Type": "application/x-ndjson"}
            )
            report = r.json()["data"]
            assert (report["lines"], report["created"], report["rejected"]) == (5, 2, 3)
            assert [(x["line"], x["field"]) for x in report["rejections"]] == [
                (3, "role"),
                (4, None),
                (5, "external_id"),
            ]

            provider_token = key.sign(firebase_claims(provider_uid))
            me = (await http.get("/api/1/profiles/me/", headers=bearer(provider_token))).json()["data"]
            assert me["external_id"] == provider_uid and [d["platform"] for d in me["devices"]] == ["unknown"]
            await scenario_one(server, http, key.sign(firebase_claims(seeker_uid)), provider_token, me["id"])

            # The app logs out: its device is forgotten and never pushed again.
            r = await http.request(
                "DELETE", "/api/1/profiles/fcm-token/", json={"fcm_token": "pia-phone"}, headers=bearer(provider_token)
            )
            assert r.status_code == 204
            assert (await http.get("/api/1/profiles/me/", headers=bearer(provider_token))).json()["data"][
                "devices"
            ] == []


async def test_hostile_tokens_are_refused(tmp_path, firebase_keys):
    key = firebase_keys.published[0]
    uid = "hostileTestUid0000000000000"
    with running_server(firebase_env(tmp_path, firebase_keys)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            r = await http.put(f"/api/1/admin/profiles/{uid}", json={"role": "seeker", "name": "S"}, headers=ADMIN)
            assert r.status_code == 201
            assert (await http.get("/api/1/profiles/me/", headers=bearer(key.sign(firebase_claims(uid))))).is_success
            public_pem = key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            forged = {
                "forged kid": key.sign(firebase_claims(uid), kid="not-published"),
                "signed by another key": rsa_key("key-1").sign(firebase_claims(uid)),
                "alg none": jwt.encode(firebase_claims(uid), None, algorithm="none", headers={"kid": "key-1"}),
                "HS256 with the public key": _hs256_with(public_pem, firebase_claims(uid)),
                "expired": key.sign(firebase_claims(uid, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
                "wrong issuer": key.sign(firebase_claims(uid, iss="https://securetoken.google.com/other")),
                "wrong audience": key.sign(firebase_claims(uid, aud="other")),
                "subject too long": key.sign(firebase_claims("u" * 129)),
                "subject with NUL": key.sign(firebase_claims("abc\u0000def")),
                "subject with a line break": key.sign(firebase_claims("abc\ndef")),
                "no exp": key.sign({k: v for k, v in firebase_claims(uid).items() if k != "exp"}),
            }
            for name, token in forged.items():
                r = await http.get("/api/1/profiles/me/", headers=bearer(token))
                assert r.status_code == 401 and r.json()["code"] == "not_authenticated", name
            # A stream of forged kids is not a stream of fetches: at most one refetch a minute.
            before = firebase_keys.fetches
            for i in range(30):
                await http.get("/api/1/profiles/me/", headers=bearer(key.sign(firebase_claims(uid), kid=f"forged-{i}")))
            assert firebase_keys.fetches - before <= 1


def _hs256_with(secret: bytes, claims: dict) -> str:
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    signing_input = f"{head}.{part(json.dumps(claims).encode())}"
    return signing_input + "." + part(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


async def test_keys_rotate_and_an_unreachable_key_server_never_lets_a_token_through(tmp_path):
    old, new = ec_key("2024-old"), ec_key("2025-new")
    with key_server() as keys:
        keys.publish(old)
        keys.max_age = 1  # Cache-Control honoured: the set is fresh for a second
        env = {
            "WORKCAST_DATA_DIR": str(tmp_path),
            "JWT_ALGORITHM": "ES256",
            "JWT_JWKS_URL": keys.url,
            "JWT_ISSUER": "https://auth.example.com/",
            "JWT_AUDIENCE": "workcast",
            "ADMIN_API_KEYS": API_KEY,
            "AUTH_TIMEOUT_SECONDS": "1",
        }
        claims = {"iss": "https://auth.example.com/", "aud": "workcast", "sub": "auth0|5f7c", "exp": 4102444800}
        with running_server(env) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                await http.put("/api/1/admin/profiles/auth0|5f7c", json={"role": "seeker", "name": "S"}, headers=ADMIN)

                async def status(token: str) -> int:
                    return (await http.get("/api/1/profiles/me/", headers=bearer(token))).status_code

                assert await status(old.sign(claims)) == 200
                keys.publish(new)  # the auth server rotates: the new kid is fetched on first sight
                assert await status(new.sign(claims)) == 200
                # The removed key stops working once the cached set expires (max-age 1 s).
                await eventually(lambda: _is(status(old.sign(claims)), 401), within=30)

                keys.mode = "error"  # the key server fails: the last good keys stay in use
                await asyncio.sleep(1.5)  # past max-age, so the next request tries to refetch
                assert await status(new.sign(claims)) == 200
                keys.mode = "garbage"
                assert await status(new.sign(claims)) == 200
                keys.mode = "hang"
                started = time.monotonic()
                assert await status(new.sign(claims)) == 200  # never hangs: bounded by AUTH_TIMEOUT_SECONDS
                assert time.monotonic() - started < 20
                keys.mode = "ok"

    # A server that never got any key answers 503, never accepts.
    with key_server() as keys:
        keys.mode = "error"
        env["JWT_JWKS_URL"] = keys.url
        env["WORKCAST_DATA_DIR"] = str(tmp_path / "second")
        with running_server(env) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                r = await http.get("/api/1/profiles/me/", headers=bearer(old.sign(claims)))
                error_of(r, 503, "auth_unavailable")


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_the_provisioning_api_checks_who_asks(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "ADMIN_API_KEYS": API_KEY, "JWT_SECRET": "s" * 40}
    with running_server(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            path, body = "/api/1/admin/profiles/u-1", {"role": "seeker", "name": "S"}
            error_of(await http.put(path, json=body), 401, "not_authenticated")
            error_of(await http.put(path, json=body, headers=bearer("wc-admin-" + "b" * 40)), 401, "not_authenticated")
            r = await http.put(path, json=body, headers={"X-API-Key": API_KEY})
            assert r.status_code == 201
            seeker_token = jwt.encode({"sub": "u-1", "exp": 4102444800}, "s" * 40, algorithm="HS256")
            error_of(await http.get(path, headers=bearer(seeker_token)), 403, "not_an_operator")
            error_of(await http.get("/api/1/admin/profiles/nobody", headers=ADMIN), 404, "profile_not_found")
            error_of(
                await http.put(path, json=body | {"latitude": 1, "longitude": 2}, headers=ADMIN), 422, "invalid_input"
            )
            r = await http.put("/api/1/admin/profiles/op-1", json={"role": "operator", "name": "Ops"}, headers=ADMIN)
            operator = jwt.encode({"sub": "op-1", "exp": 4102444800}, "s" * 40, algorithm="HS256")
            assert (await http.get(path, headers=bearer(operator))).json()["data"]["external_id"] == "u-1"

            # Erasure: personal data gone, the token is refused, the socket is closed.
            async with open_socket(server, "/ws/work/seeker/", seeker_token) as app:
                r = await http.delete(path, headers=ADMIN)
                assert r.status_code == 200 and r.json()["data"]["erased"] is True
                with pytest.raises(ConnectionClosed) as closed:
                    await app.receive(within=30)
                assert closed.value.rcvd.code == 4401
            error_of(await http.get("/api/1/profiles/me/", headers=bearer(seeker_token)), 401, "unknown_user")
            error_of(await http.get(path, headers=ADMIN), 404, "profile_not_found")


async def test_auto_provisioning_makes_a_profile_from_the_claims(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "JWT_SECRET": "s" * 40, "AUTH_AUTO_PROVISION": "true"}
    with running_server(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            claims = {"sub": "new-user", "exp": 4102444800, "role": "provider", "name": "Nia", "phone_number": "+1"}
            token = jwt.encode(claims, "s" * 40, algorithm="HS256")
            me = (await http.get("/api/1/profiles/me/", headers=bearer(token))).json()["data"]
            assert (me["role"], me["name"], me["external_id"]) == ("provider", "Nia", "new-user")
            no_role = jwt.encode({"sub": "other", "exp": 4102444800}, "s" * 40, algorithm="HS256")
            error_of(await http.get("/api/1/profiles/me/", headers=bearer(no_role)), 401, "unknown_user")
            operator = jwt.encode({"sub": "boss", "exp": 4102444800, "role": "operator"}, "s" * 40, algorithm="HS256")
            error_of(await http.get("/api/1/profiles/me/", headers=bearer(operator)), 401, "unknown_user")
