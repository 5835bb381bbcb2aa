"""The image's HEALTHCHECK: GET /healthz on this container's web server.

The Host header is the first of ALLOWED_HOSTS, since Django refuses any other.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def host_header() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8001")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": host_header()}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - fixed URL
            return 0 if response.status == 200 else 1
    except OSError as exc:
        sys.stderr.write(f"healthcheck: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
