"""The outbound-URL guard: which webhook URLs the server refuses to call, and address pinning.

No traffic leaves this machine: URLs use IP literals or names answered by a fake resolver, and
the resolver refuses any other name (so a slip would fail the test, not query real DNS).
"""

import http.server
import ipaddress
import re
import socket
import threading

import pytest

from batchserver import net

FAKE_DNS = {
    "public.example.test": ["93.184.215.14"],
    "internal.example.test": ["10.1.2.3"],
    "metadata.example.test": ["169.254.169.254"],
    "mixed.example.test": ["93.184.215.14", "192.168.1.10"],
    "v6-loopback.example.test": ["::1"],
    "hooks.example.test": ["127.0.0.1"],
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """Answer only the names above; count every lookup."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            lookups.append(host)
            if host not in FAKE_DNS:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in FAKE_DNS[host]
            ]
        return real(host, port, *args, **kwargs)  # an IP literal: no DNS query

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.fixture(autouse=True)
def _strict(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False


REFUSED = {
    "loopback": ["http://127.0.0.1/hook", "http://127.8.9.10/", "http://[::1]/hook"],
    "private": ["http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.0.1/"],
    "link-local": ["http://169.254.1.1/", "http://[fe80::1]/"],
    "unique-local": ["http://[fc00::1]/", "http://[fd12:3456::1]/"],
    "multicast": ["http://224.0.0.1/", "http://239.255.255.250/", "http://[ff02::1]/"],
    "reserved": ["http://240.0.0.1/", "http://255.255.255.255/"],
    "cloud metadata": [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://100.100.100.200/",
        "http://[fd00:ec2::254]/",
    ],
    "unspecified": ["http://0.0.0.0:8000/", "http://[::]/"],
    "shared (carrier-grade NAT)": ["http://100.64.0.1/"],
}


@pytest.mark.parametrize(
    "kind,url", [(kind, url) for kind, urls in REFUSED.items() for url in urls]
)
def test_each_refused_class_of_address(kind, url):
    with pytest.raises(net.UnsafeURL, match=re.escape(kind)):
        net.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    ],
)
def test_ipv4_hidden_in_ipv6_is_checked_as_ipv4(url):
    with pytest.raises(net.UnsafeURL, match="embedded in"):
        net.check_url(url)


@pytest.mark.parametrize(
    "url", ["ftp://93.184.215.14/x", "file:///etc/passwd", "gopher://93.184.215.14/", "x"]
)
def test_only_http_and_https(url):
    with pytest.raises(net.UnsafeURL):
        net.check_url(url)


def test_public_addresses_pass_and_are_pinned():
    target = net.check_url("https://93.184.215.14:8443/hook?x=1")
    assert (target.host, target.port, str(target.ip)) == ("93.184.215.14", 8443, "93.184.215.14")
    assert str(net.check_url("http://[2606:4700::1111]/").ip) == "2606:4700::1111"


def test_host_names_are_resolved_and_every_address_checked(fake_dns):
    assert str(net.check_url("https://public.example.test/hook").ip) == "93.184.215.14"
    with pytest.raises(net.UnsafeURL, match="internal.example.test .10.1.2.3. is a private"):
        net.check_url("https://internal.example.test/hook")
    with pytest.raises(net.UnsafeURL, match="cloud metadata"):
        net.check_url("http://metadata.example.test/")
    with pytest.raises(net.UnsafeURL, match="loopback"):
        net.check_url("http://v6-loopback.example.test/")
    # one bad answer among good ones refuses the name: the connection could go to either
    with pytest.raises(net.UnsafeURL, match="192.168.1.10"):
        net.check_url("http://mixed.example.test/")
    assert "mixed.example.test" in fake_dns


def test_a_name_that_does_not_resolve_is_a_retryable_error():
    with pytest.raises(net.ResolveError):
        net.check_url("https://nowhere.example.test/hook")


def test_allow_private_opens_the_private_ranges_but_never_metadata(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://127.0.0.1:9/", "http://10.0.0.1/", "http://[fd12::1]/", "http://[::1]/"):
        net.check_url(url)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://224.0.0.1/"):
        with pytest.raises(net.UnsafeURL):
            net.check_url(url)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.server.seen.append(
            (self.headers["Host"], self.rfile.read(int(self.headers["Content-Length"])))
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_connection_goes_to_the_checked_address_with_the_original_host(settings, fake_dns):
    # given a receiver on loopback, reached through a name (allowed for this test)
    settings.WEBHOOK_ALLOW_PRIVATE = True
    server = http.server.HTTPServer(("127.0.0.1", 0), _Echo)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        target = net.check_url(f"http://hooks.example.test:{port}/hook")
        looked_up = len(fake_dns)
        # when it is called
        status, _ = net.post_pinned(target, b"{}", {"content-type": "application/json"}, 5)
    finally:
        server.shutdown()
        server.server_close()
    # then the request arrived at the checked IP, named by its original host, and the name was
    # not resolved a second time (a rebinding DNS answer has no second chance)
    assert status == 204
    assert server.seen == [(f"hooks.example.test:{port}", b"{}")]
    assert len(fake_dns) == looked_up == 1
