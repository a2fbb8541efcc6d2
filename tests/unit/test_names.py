"""lwtui.core.names.endpoint: the one way lwtui writes ADDR:PORT (rules, tables,
the lab's URLs, --metrics messages), from an address object or its text."""

from __future__ import annotations

import ipaddress

import pytest

from lwtui.core.names import addr_text, endpoint
from lwtui.lab.traffic import _url
from lwtui.session.metrics import _bind_error


@pytest.mark.parametrize("addr, port, want", [
    ("10.0.0.3", 8080, "10.0.0.3:8080"),
    ("fd00::3", 8081, "[fd00::3]:8081"),
    ("::", 9100, "[::]:9100"),
    ("fd00::3", None, "fd00::3"),
])
def test_endpoint_from_text_or_object_alike(addr, port, want):
    assert endpoint(addr, port) == want
    assert endpoint(ipaddress.ip_address(addr), port) == want


def test_addr_text_brackets_ipv6_only():
    assert addr_text(ipaddress.ip_address("fd00::2")) == "[fd00::2]"
    assert addr_text("10.0.0.2") == "10.0.0.2"


def test_the_lab_urls_and_metrics_messages_write_it_the_same_way():
    assert _url("fd00::3", 8081, "big") == "http://[fd00::3]:8081/big"
    assert _url("10.0.0.3", 8080) == "http://10.0.0.3:8080/"
    msg = _bind_error("::1", 9100, OSError(98, "Address already in use"))
    assert msg.startswith("--metrics [::1]:9100: port 9100 is already in use")
