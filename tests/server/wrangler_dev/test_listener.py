"""The edge's socket: 127.0.0.1:443, or a refusal that says how to fix it."""

import errno
import socket

import pytest

from server.wrangler_dev.listener import HOST, WILDCARD, ListenError, listen, open_socket


def test_a_taken_port_is_refused_naming_it_and_how_to_find_the_taker() -> None:
    with open_socket(HOST, 0) as taken:
        port = taken.getsockname()[1]

        with pytest.raises(ListenError) as refused:
            listen(port)

    assert f"{HOST}:{port} is taken by another program" in str(refused.value)
    assert f"ss -ltnp 'sport = :{port}'" in str(refused.value)


def test_a_free_port_is_bound_on_loopback_only() -> None:
    with open_socket(HOST, 0) as probe:
        port = probe.getsockname()[1]

    listening = listen(port)

    with listening.socket:
        assert listening.socket.getsockname() == (HOST, port)
        assert listening.address == HOST


class Binder:
    """A bind that refuses the addresses in `refused`, recording every address asked."""

    def __init__(self, *refused: str) -> None:
        self.refused = refused
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> socket.socket:
        self.asked.append(host)
        if host in self.refused:
            raise PermissionError(errno.EACCES, "Permission denied")
        return socket.socket()


def test_on_linux_no_permission_says_how_to_allow_port_443_without_root() -> None:
    with pytest.raises(ListenError) as refused:
        listen(443, platform="linux", bind=Binder(HOST))

    assert "sudo sysctl net.ipv4.ip_unprivileged_port_start=443" in str(refused.value)
    assert "sudo setcap cap_net_bind_service=+ep" in str(refused.value)


def test_on_macos_the_wildcard_address_stands_in_for_loopback() -> None:
    binder = Binder(HOST)

    listening = listen(443, platform="darwin", bind=binder)

    listening.socket.close()
    assert binder.asked == [HOST, WILDCARD]
    assert listening.address == WILDCARD


def test_on_macos_no_permission_at_all_says_sudo() -> None:
    with pytest.raises(ListenError, match="run it with sudo"):
        listen(443, platform="darwin", bind=Binder(HOST, WILDCARD))
