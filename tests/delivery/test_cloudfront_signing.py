"""CloudFront signed URLs and cookies, checked by a verifier of our own (no emulator
checks them): valid ones pass; tampered, expired, wrong-address and wrong-resource
ones fail; keys rotate without breaking links already handed out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.delivery.signing import CloudFrontSigner
from tests.delivery.cloudfront_verifier import CloudFrontVerifier, Refused

DOMAIN = "https://books.stories.example"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
KEY = "books/3f2c/1-AbCdEf.pdf"


@cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(name: str) -> str:
    return (
        private_key(name)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def verifier(*names: str) -> CloudFrontVerifier:
    return CloudFrontVerifier({n: private_key(n).public_key() for n in names})


def signer(*names: str, active: str | None = None) -> CloudFrontSigner:
    return CloudFrontSigner(DOMAIN, {n: pem(n) for n in names}, active)


def refused(url: str, *, at: datetime = NOW, ip: str = "203.0.113.7") -> str:
    with pytest.raises(Refused) as caught:
        verifier("K1", "K2").verify_url(url, now=at, client_ip=ip)
    return str(caught.value)


def test_a_canned_link_opens_its_object_until_it_expires() -> None:
    url = signer("K1").signed_url(KEY, "v1", expires_at=LATER)
    assert url.startswith(f"{DOMAIN}/{KEY}?versionId=v1&Expires=")
    verifier("K1").verify_url(url, now=NOW, client_ip="198.51.100.1")
    assert refused(url, at=LATER) == "expired"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda u: u.replace("Expires=", "Expires=9"), "bad signature"),  # stretched
        (lambda u: u.replace("versionId=v1", "versionId=v2"), "bad signature"),  # other edition
        (lambda u: u.replace("1-AbCdEf", "1-AbCdEg"), "bad signature"),  # other object
        (lambda u: u.replace("Key-Pair-Id=K1", "Key-Pair-Id=K2"), "bad signature"),
        (lambda u: u.replace("Key-Pair-Id=K1", "Key-Pair-Id=K9"), "unknown key pair id"),
        (lambda u: u.split("&Signature=")[0], "missing signature"),
    ],
    ids=["expiry", "version", "object", "other-key", "unknown-key", "no-signature"],
)
def test_a_tampered_link_fails(tamper: object, reason: str) -> None:
    url = signer("K1").signed_url(KEY, "v1", expires_at=LATER)
    assert refused(tamper(url)) == reason  # type: ignore[operator]


def test_a_custom_policy_binds_the_client_address_and_a_start_time() -> None:
    url = signer("K1").signed_url(
        KEY, "v1", expires_at=LATER, client_ip="203.0.113.7", not_before=NOW - timedelta(seconds=5)
    )
    assert "Policy=" in url
    assert "Expires=" not in url
    verifier("K1").verify_url(url, now=NOW, client_ip="203.0.113.7")
    assert refused(url, ip="203.0.113.8") == "wrong client address"
    assert refused(url, at=NOW - timedelta(seconds=10)) == "not yet valid"
    assert refused(url, at=LATER + timedelta(seconds=1)) == "expired"
    ipv6 = signer("K1").signed_url(KEY, None, expires_at=LATER, client_ip="2001:db8::1")
    verifier("K1").verify_url(ipv6, now=NOW, client_ip="2001:db8::1")
    assert refused(ipv6, ip="2001:db8::2") == "wrong client address"


def test_a_signature_moved_to_another_resource_fails() -> None:
    url = signer("K1").signed_url(KEY, "v1", expires_at=LATER, client_ip="203.0.113.7")
    query = url.split("?", 1)[1]
    stolen = f"{DOMAIN}/books/another/1-xyz.pdf?{query}"
    assert refused(stolen) == "resource does not match the policy"


def test_keys_rotate_without_breaking_links_already_out() -> None:
    old_link = signer("K1").signed_url(KEY, "v1", expires_at=LATER)
    # K2 added at the end of the list: it signs from now on; K1 still verifies.
    rotated = signer("K1", "K2")
    assert rotated.active_key_id == "K2"
    new_link = rotated.signed_url(KEY, "v1", expires_at=LATER)
    assert new_link.endswith("Key-Pair-Id=K2")
    both = verifier("K1", "K2")
    both.verify_url(old_link, now=NOW, client_ip="198.51.100.1")
    both.verify_url(new_link, now=NOW, client_ip="198.51.100.1")
    # Once K1 leaves the key group, its links stop working.
    with pytest.raises(Refused):
        verifier("K2").verify_url(old_link, now=NOW, client_ip="198.51.100.1")
    assert signer("K1", "K2", active="K1").active_key_id == "K1"


def test_signed_cookies_open_one_books_assets_only() -> None:
    book = uuid.uuid4()
    cookies = signer("K1").signed_cookies(f"books/{book}", expires_at=LATER)
    assert cookies.resource == f"{DOMAIN}/books/{book}/*"
    check = verifier("K1")
    for asset in ("1-abc.pdf", "covers/x.png"):
        check.verify_cookies(
            f"{DOMAIN}/books/{book}/{asset}", cookies.values, now=NOW, client_ip="198.51.100.1"
        )
    with pytest.raises(Refused, match="resource"):
        check.verify_cookies(
            f"{DOMAIN}/books/{uuid.uuid4()}/1-abc.pdf",
            cookies.values,
            now=NOW,
            client_ip="198.51.100.1",
        )
    with pytest.raises(Refused, match="expired"):
        check.verify_cookies(
            f"{DOMAIN}/books/{book}/1.pdf", cookies.values, now=LATER, client_ip="198.51.100.1"
        )
    forged = {**cookies.values, "CloudFront-Policy": cookies.values["CloudFront-Policy"][:-4]}
    with pytest.raises(Refused):
        check.verify_cookies(f"{DOMAIN}/books/{book}/1.pdf", forged, now=NOW, client_ip="1.2.3.4")


def test_the_verifier_is_not_a_yes_man() -> None:
    """A link signed by a key the verifier does not hold under that id fails."""
    impostor = CloudFrontSigner(DOMAIN, {"K1": pem("intruder")})
    url = impostor.signed_url(KEY, "v1", expires_at=LATER)
    assert refused(url) == "bad signature"


def test_a_memoized_signature_is_the_signature() -> None:
    """Same policy, same bytes (RSA PKCS#1 v1.5 is deterministic); any change re-signs."""
    first = signer("K1")
    fresh = signer("K1")
    url = first.signed_url(KEY, "v1", expires_at=LATER)
    assert first.signed_url(KEY, "v1", expires_at=LATER) == url  # from the memo
    assert fresh.signed_url(KEY, "v1", expires_at=LATER) == url  # computed anew
    later = first.signed_url(KEY, "v1", expires_at=LATER + timedelta(seconds=1))
    other_ip = first.signed_url(KEY, "v1", expires_at=LATER, client_ip="203.0.113.9")
    assert len({url, later, other_ip}) == 3
    for link in (url, later):
        verifier("K1").verify_url(link, now=NOW, client_ip="198.51.100.1")
    assert refused(other_ip, ip="203.0.113.10") == "wrong client address"
