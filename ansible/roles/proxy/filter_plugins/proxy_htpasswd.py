"""A password line for nginx's auth_basic_user_file, in RFC 2307's salted SHA-1 form ({SSHA}).

nginx reads crypt(3), $apr1$ and {SSHA}; only {SSHA} is computable without passlib or the
crypt module (gone from Python 3.13). The salt is derived from the site and the password, so
the same password gives the same line and a re-run changes nothing; the passwords are
generated (32 random letters and digits), which is what makes a fast hash acceptable here.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any


def proxy_ssha(password: str, site: str) -> str:
    salt = hashlib.sha256(f"mlenv-htpasswd:{site}:{password}".encode()).digest()[:8]
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 (the scheme nginx reads)
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"proxy_ssha": proxy_ssha}
