"""Runs a Python script as a machine outside the stack would, where *.mlenv.localhost names this
machine (as an /etc/hosts line or a resolver that knows .localhost makes it; glibc here does not).

    python tests/helpers/outside.py SCRIPT [ARGS...]
"""

import runpy
import socket
import sys

DOMAIN = ".mlenv.localhost"
real = socket.getaddrinfo


def resolve(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    return real("127.0.0.1" if isinstance(host, str) and host.endswith(DOMAIN) else host, *args, **kwargs)


socket.getaddrinfo = resolve  # type: ignore[assignment]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
