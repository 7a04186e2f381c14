"""The edge's listening socket, 127.0.0.1:443, or a refusal that says how to fix it.

wrangler dials the preview edge at `https://<host>:443/`: scheme and port are fixed in its
code (RemoteRuntimeController), so no other port can stand in. Port 443 is privileged:

- Linux: root, or `sudo sysctl net.ipv4.ip_unprivileged_port_start=443` (until reboot; a file
  in /etc/sysctl.d/ keeps it), or the capability on the Python binary that runs this command
  (`sudo setcap cap_net_bind_service=+ep <python>`, which then holds for every script it runs).
- macOS (since 10.14): any user may bind ports below 1024 on the wildcard address, but not on
  one address such as 127.0.0.1 (public reports; not tried here). So when 127.0.0.1:443 is
  refused there, the edge listens on 0.0.0.0:443 instead and answers loopback peers only.
"""

import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

HOST = "127.0.0.1"
PORT = 443
WILDCARD = "0.0.0.0"


class ListenError(Exception):
    """The edge cannot listen; the message says why and what to do."""


@dataclass(frozen=True)
class Listening:
    socket: socket.socket
    address: str  # what was bound: HOST, or WILDCARD on macOS


Bind = Callable[[str, int], socket.socket]


def open_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # A run that just ended leaves connections in TIME_WAIT; they must not block the next.
        # (On Linux this never lets two programs listen on one port.)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def listen(port: int = PORT, platform: str = sys.platform, bind: Bind = open_socket) -> Listening:
    try:
        return Listening(bind(HOST, port), HOST)
    except PermissionError:
        if platform != "darwin":
            raise ListenError(_no_permission(port, platform)) from None
    except OSError as error:
        raise ListenError(_bind_failed(port, error)) from None
    try:
        return Listening(bind(WILDCARD, port), WILDCARD)
    except PermissionError:
        raise ListenError(_no_permission(port, platform)) from None
    except OSError as error:
        raise ListenError(_bind_failed(port, error)) from None


def _no_permission(port: int, platform: str) -> str:
    where = f"{HOST}:{port}"
    if platform == "darwin":
        return f"no permission to listen on {where} (nor on {WILDCARD}:{port}); run it with sudo"
    return (
        f"no permission to listen on {where}, the port wrangler dials for remote bindings. "
        "Allow ports from 443 up for every user until the next reboot with\n"
        "    sudo sysctl net.ipv4.ip_unprivileged_port_start=443\n"
        "(to keep it, put `net.ipv4.ip_unprivileged_port_start=443` in "
        "/etc/sysctl.d/50-unprivileged-443.conf), or give this Python the capability:\n"
        f"    sudo setcap cap_net_bind_service=+ep {os.path.realpath(sys.executable)}"
    )


def _bind_failed(port: int, error: OSError) -> str:
    where = f"{HOST}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where} is taken by another program (another `workers-ai-local wrangler-dev`? "
            f"a local web server?); wrangler dials exactly this port, so stop that program "
            f"first. To see which it is: `sudo ss -ltnp 'sport = :{port}'` on Linux, "
            f"`sudo lsof -nP -iTCP:{port} -sTCP:LISTEN` on macOS"
        )
    return f"cannot listen on {where}: {error.strerror or error}"
