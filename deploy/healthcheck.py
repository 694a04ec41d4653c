"""Container health check: exit 0 when the service answers ``GET /healthz`` (or the path given) with 200.

Used by the Dockerfile's HEALTHCHECK and docker-compose, so neither needs curl in the image.
Standard library only; reads the port from ``PERCEPTION_PORT`` like the service does.
"""

import os
import sys
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:{os.environ.get('PERCEPTION_PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except Exception as error:  # any failure is "unhealthy"; say why in `docker inspect`
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
