"""Every signature scheme against known answers computed here with hmac/hashlib, and one-byte
mutations of the body, the secret, the timestamp and the header, each of which must be refused."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from creatorpulse.settings import Secret
from creatorpulse.sources.webhooks import verify_meta, verify_tiktok, verify_websub, verify_x
from creatorpulse.sources.webhooks.verify import Rejected

BODY = b'{"object":"instagram","entry":[{"id":"17841405309211844","time":1755779280}]}'
SECRET = "It's a Secret to Everybody"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TOLERANCE = timedelta(seconds=300)


def mutations(data: bytes) -> list[bytes]:
    """Each single-byte change: first, middle and last byte flipped, one byte dropped and added."""
    out = []
    for i in (0, len(data) // 2, len(data) - 1):
        changed = bytearray(data)
        changed[i] ^= 0x01
        out.append(bytes(changed))
    return [*out, data[:-1], data + b" "]


def rejected(call, status: int | None = None, reason: str | None = None) -> Rejected:
    with pytest.raises(Rejected) as info:
        call()
    if status is not None:
        assert info.value.status == status
    if reason is not None:
        assert info.value.reason == reason
    return info.value


# --- Meta: X-Hub-Signature-256 --------------------------------------------------------------


def meta_header(body: bytes = BODY, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_meta_known_answer_from_githubs_documented_vector() -> None:
    # The same scheme as GitHub's X-Hub-Signature-256, whose docs give this vector.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert meta_header(b"Hello, World!") == header
    verify_meta.verify(b"Hello, World!", header, [Secret(SECRET)])


def test_meta_valid_signature_passes_with_either_app_secret() -> None:
    verify_meta.verify(BODY, meta_header(), [Secret("other"), Secret(SECRET)])


@pytest.mark.parametrize("body", mutations(BODY))
def test_meta_a_one_byte_change_of_the_body_is_refused(body: bytes) -> None:
    rejected(lambda: verify_meta.verify(body, meta_header(), [Secret(SECRET)]), 401,
             "bad_signature")


@pytest.mark.parametrize("secret", [s.decode() for s in mutations(SECRET.encode())])
def test_meta_a_one_byte_change_of_the_secret_is_refused(secret: str) -> None:
    rejected(lambda: verify_meta.verify(BODY, meta_header(), [Secret(secret)]), 401)


def test_meta_a_one_byte_change_of_the_header_is_refused() -> None:
    header = meta_header()
    for i in range(len("sha256="), len(header)):
        flipped = header[:i] + ("0" if header[i] != "0" else "1") + header[i + 1:]
        rejected(lambda h=flipped: verify_meta.verify(BODY, h, [Secret(SECRET)]), 401)


@pytest.mark.parametrize(("header", "status", "reason"), [
    (None, 401, "missing_signature"),
    ("", 401, "missing_signature"),
    ("sha1=" + "0" * 40, 400, "malformed_signature"),  # the legacy SHA-1 header is not enough
    ("sha256=" + "0" * 63, 400, "malformed_signature"),
    ("sha256=" + "z" * 64, 400, "malformed_signature"),
    ("sha256" + "0" * 64, 400, "malformed_signature"),
    ("sha256=" + "0" * 600, 400, "malformed_signature"),
])
def test_meta_missing_or_malformed_headers(header: str | None, status: int, reason: str) -> None:
    rejected(lambda: verify_meta.verify(BODY, header, [Secret(SECRET)]), status, reason)


def test_a_reserialised_body_fails() -> None:
    import json

    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    rejected(lambda: verify_meta.verify(reserialised, meta_header(), [Secret(SECRET)]), 401)


# --- YouTube WebSub: X-Hub-Signature sha1 ---------------------------------------------------


def websub_header(body: bytes = BODY, secret: str = SECRET, algo: str = "sha1") -> str:
    return f"{algo}=" + hmac.new(secret.encode(), body, getattr(hashlib, algo)).hexdigest()


def test_websub_known_answer() -> None:
    header = websub_header(b"Hello, World!")
    assert header == "sha1=" + hmac.new(SECRET.encode(), b"Hello, World!", "sha1").hexdigest()
    verify_websub.verify(b"Hello, World!", header, [Secret(SECRET)])


@pytest.mark.parametrize("algo", ["sha1", "sha256", "sha512"])
def test_websub_accepts_the_algorithms_websub_allows(algo: str) -> None:
    verify_websub.verify(BODY, websub_header(algo=algo), [Secret(SECRET)])


@pytest.mark.parametrize("body", mutations(BODY))
def test_websub_a_one_byte_change_of_the_body_is_refused(body: bytes) -> None:
    rejected(lambda: verify_websub.verify(body, websub_header(), [Secret(SECRET)]), 401)


@pytest.mark.parametrize("secret", [s.decode() for s in mutations(SECRET.encode())])
def test_websub_a_one_byte_change_of_the_secret_is_refused(secret: str) -> None:
    rejected(lambda: verify_websub.verify(BODY, websub_header(), [Secret(secret)]), 401)


def test_websub_header_mutations_are_refused() -> None:
    header = websub_header()
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    rejected(lambda: verify_websub.verify(BODY, flipped, [Secret(SECRET)]), 401)
    rejected(lambda: verify_websub.verify(BODY, "md5=" + header[5:], [Secret(SECRET)]), 400)
    # Naming another algorithm over a sha1 digest: wrong length, refused.
    rejected(lambda: verify_websub.verify(BODY, "sha256=" + header[5:], [Secret(SECRET)]), 400)
    rejected(lambda: verify_websub.verify(BODY, None, [Secret(SECRET)]), 401)


# --- TikTok: TikTok-Signature t=…,s=… -------------------------------------------------------

T = int(NOW.timestamp())


def tiktok_header(body: bytes = BODY, secret: str = SECRET, t: int = T) -> str:
    signed = f"{t}.".encode() + body
    return f"t={t},s=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def tiktok(body: bytes, header: str | None, secret: str = SECRET) -> None:
    verify_tiktok.verify(body, header, [Secret(secret)], now=NOW, tolerance=TOLERANCE)


def test_tiktok_known_answer() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert tiktok_header() == f"t={T},s={expected}"
    tiktok(BODY, tiktok_header())
    tiktok(BODY, f"s={expected}, t={T}")  # any order, spaces allowed


@pytest.mark.parametrize("body", mutations(BODY))
def test_tiktok_a_one_byte_change_of_the_body_is_refused(body: bytes) -> None:
    rejected(lambda: tiktok(body, tiktok_header()), 401, "bad_signature")


@pytest.mark.parametrize("secret", [s.decode() for s in mutations(SECRET.encode())])
def test_tiktok_a_one_byte_change_of_the_secret_is_refused(secret: str) -> None:
    rejected(lambda: tiktok(BODY, tiktok_header(), secret), 401)


def test_tiktok_a_changed_timestamp_is_a_bad_signature() -> None:
    header = tiktok_header()
    changed = header.replace(f"t={T}", f"t={T + 1}")
    rejected(lambda: tiktok(BODY, changed), 401, "bad_signature")
    changed = header.replace(f"t={T}", f"t={T - 10}")
    rejected(lambda: tiktok(BODY, changed), 401, "bad_signature")


def test_tiktok_a_one_byte_change_of_the_signature_is_refused() -> None:
    header = tiktok_header()
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    rejected(lambda: tiktok(BODY, flipped), 401, "bad_signature")


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_tiktok_a_correctly_signed_replay_outside_the_tolerance_is_refused(offset: int) -> None:
    rejected(lambda: tiktok(BODY, tiktok_header(t=T + offset)), 401, "stale_timestamp")


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_tiktok_timestamps_within_the_tolerance_pass(offset: int) -> None:
    tiktok(BODY, tiktok_header(t=T + offset))


@pytest.mark.parametrize("header", [
    "t=abc,s=00", "s=" + "0" * 64, "t=1633174587", "t=1,t=2,s=" + "0" * 64, "garbage",
    "t=1633174587,s=" + "0" * 63,
])
def test_tiktok_malformed_headers_are_400(header: str) -> None:
    rejected(lambda: tiktok(BODY, header), 400, "malformed_signature")


# --- X: x-twitter-webhooks-signature and the CRC ---------------------------------------------


def x_header(body: bytes = BODY, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def test_x_known_answer() -> None:
    verify_x.verify(BODY, x_header(), [Secret(SECRET)])


@pytest.mark.parametrize("body", mutations(BODY))
def test_x_a_one_byte_change_of_the_body_is_refused(body: bytes) -> None:
    rejected(lambda: verify_x.verify(body, x_header(), [Secret(SECRET)]), 401)


@pytest.mark.parametrize("secret", [s.decode() for s in mutations(SECRET.encode())])
def test_x_a_one_byte_change_of_the_secret_is_refused(secret: str) -> None:
    rejected(lambda: verify_x.verify(BODY, x_header(), [Secret(secret)]), 401)


def test_x_header_mutations_are_refused() -> None:
    header = x_header()
    mac = bytearray(base64.b64decode(header[7:]))
    mac[0] ^= 0x01
    rejected(lambda: verify_x.verify(BODY, "sha256=" + base64.b64encode(bytes(mac)).decode(),
                                     [Secret(SECRET)]), 401, "bad_signature")
    hex_form = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    rejected(lambda: verify_x.verify(BODY, hex_form, [Secret(SECRET)]), 400)  # hex, not base64
    rejected(lambda: verify_x.verify(BODY, header[:-2], [Secret(SECRET)]), 400)
    rejected(lambda: verify_x.verify(BODY, None, [Secret(SECRET)]), 401, "missing_signature")


def test_x_crc_response_token() -> None:
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), b"crc-token-123", hashlib.sha256).digest()).decode()
    assert verify_x.crc_response("crc-token-123", Secret(SECRET)) == {
        "response_token": f"sha256={expected}"}


# --- no secret or signature ever shows, and every comparison is constant-time --------------


def test_a_refusal_names_a_reason_and_never_the_signature_or_secret() -> None:
    header = meta_header()
    error = rejected(lambda: verify_meta.verify(BODY + b"x", header, [Secret(SECRET)]))
    assert header[7:] not in str(error) and SECRET not in str(error)
    assert str(error) == "bad_signature"


def test_signatures_are_compared_only_with_hmac_compare_digest() -> None:
    folder = Path(verify_meta.__file__).parent
    for path in folder.glob("verify*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                assert not names & {"given", "expected", "mac", "digest"}, path
    source = (folder / "verify.py").read_text()
    assert "hmac.compare_digest" in source
