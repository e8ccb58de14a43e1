from __future__ import annotations

import ipaddress

import pytest

from core.errors import ValidationFailed
from core.tasks.targets import (
    WebhookPolicy,
    check_target,
    is_public_address,
    validate_webhook_url,
)
from tests.tasks.fakes import fake_dns, no_dns

RESOLVER = fake_dns(
    {
        "internal.example": ["10.1.2.3"],
        "mixed.example": ["93.184.216.34", "192.168.0.1"],
        "metadata.example": ["169.254.169.254"],
        "mapped.example": ["::ffff:127.0.0.1"],
        "public.example": ["93.184.216.34"],
        "v6.example": ["2606:4700:4700::1111"],
        # A resolver lying about names that must never reach it.
        "localhost": ["93.184.216.34"],
        "api.localhost": ["93.184.216.34"],
        "127.1": ["93.184.216.34"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:8484/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[ff02::1]/",
        "http://internal.example/",
        "http://mixed.example/",
        "http://metadata.example/",
        "http://mapped.example/",
    ],
)
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await check_target(url, WebhookPolicy(), resolver=RESOLVER)
    [detail] = caught.value.details or []
    assert detail["path"] == "webhook"
    assert "is not a public address" in detail["problem"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "scheme must be http or https, not 'ftp'"),
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("javascript:alert(1)", "scheme must be http or https, not 'javascript'"),
        ("example.com/hook", "scheme must be http or https, not ''"),
        ("http:///hook", "URL has no host"),
        ("https://", "URL has no host"),
        ("http://example.com:99999/", "not a valid URL: Port out of range 0-65535"),
    ],
)
async def test_malformed_targets_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_webhook_url(url)
    assert caught.value.details == [{"path": "webhook", "problem": problem}]
    with pytest.raises(ValidationFailed):
        await check_target(url, WebhookPolicy(allow_private=True), resolver=no_dns)


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://public.example/hook", WebhookPolicy()),
        ("http://v6.example:8080/", WebhookPolicy()),
        ("https://93.184.216.34/", WebhookPolicy()),
        ("http://[2606:4700:4700::1111]/", WebhookPolicy()),
        ("http://internal.example/", WebhookPolicy(allow=["10.0.0.0/8"])),
        ("http://hooks.corp/", WebhookPolicy(allow=["hooks.corp"])),
        ("http://HOOKS.corp./", WebhookPolicy(allow=["hooks.corp"])),
        ("http://127.0.0.1:9000/", WebhookPolicy(allow_private=True)),
        ("http://[::1]/", WebhookPolicy(allow=["::1"])),
    ],
)
async def test_public_or_allowed_targets_pass(url: str, policy: WebhookPolicy) -> None:
    await check_target(url, policy, resolver=RESOLVER)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.2/", ["127.0.0.1"]),
        ("http://10.0.0.1/", ["192.168.0.0/16"]),
        ("http://mixed.example/", ["public.example"]),
        ("http://[::1]/", ["127.0.0.0/8"]),
    ],
)
async def test_allow_list_is_exact(url: str, allow: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        await check_target(url, WebhookPolicy(allow=allow), resolver=RESOLVER)


def test_validate_webhook_url_returns_the_url() -> None:
    assert validate_webhook_url("https://hooks.slack.com/services/T/B/X") == (
        "https://hooks.slack.com/services/T/B/X"
    )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("2002:a00:1::1", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
