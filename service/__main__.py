"""``python -m service`` / ``perception serve``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys

import uvicorn

from service.app import create_app
from service.logs import configure_logging
from service.security import Keys
from service.settings import Settings

log = logging.getLogger("service")

# On SIGTERM, how long the event loop gets to accept connections already waiting in the kernel's
# backlog, and then to read the requests on them, before uvicorn closes every connection it has not
# seen a request on (a busy 2-core machine can leave both undone for tens of milliseconds).
SETTLE_S = 0.2


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: report not-ready at once, keep accepting and reading for ``SETTLE_S``, stop
    accepting connections, then let uvicorn finish in-flight requests; the app's shutdown answers every
    queued frame before exit."""

    def __init__(self, config: uvicorn.Config, state):
        super().__init__(config)
        self.perception_state = state

    def handle_exit(self, sig, frame) -> None:
        self.perception_state.draining = True
        log.info("signal %s: draining", sig)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        await asyncio.sleep(SETTLE_S)  # accept what the kernel already holds (readiness says draining)
        for server in self.servers:
            server.close()  # from here new connections are refused
        await asyncio.sleep(SETTLE_S)  # read the requests on connections accepted just before
        await super().shutdown(sockets)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_command(args: argparse.Namespace | None = None) -> int:
    settings = Settings()
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    log_config = configure_logging(settings.log_level)
    if Keys(settings).inference_open and not is_loopback(host):
        log.warning("no API keys configured (PERCEPTION_API_KEYS or PERCEPTION_API_KEYS_FILE): binding to "
                    "127.0.0.1 instead of %s", host)  # fmt: skip
        host = "127.0.0.1"
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=log_config,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        access_log=False,
    )
    DrainingServer(config, app.state.perception).run()
    return 0


if __name__ == "__main__":
    sys.exit(serve_command())
