"""``python -m service`` / ``perception serve``: run the service with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from service.app import create_app
from service.settings import Settings


def serve_command(args: argparse.Namespace | None = None) -> int:
    settings = Settings()
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(serve_command())
