"""A polling worker process with the fake connector, for the integration tests.

``python -m tests.fake_worker --tenant T --prefix P --topics OBS,DLQ,HINTS --worker-id W``; the
settings come from the environment like any entry point (the test points the TikTok URL at its
fake platform). Everything but the connector lookup is the production wiring of ``sources run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from creatorpulse.settings import Settings
from creatorpulse.sources.runner import Topics, run_worker
from tests.fake_platform import FakeConnector


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--topics", required=True)
    parser.add_argument("--worker-id", required=True)
    args = parser.parse_args()
    settings = Settings.from_env(os.environ, dotenv=None)
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format=f"%(asctime)s {args.worker_id} %(levelname)s %(name)s %(message)s")
    observations, dlq, hints = args.topics.split(",")
    return run_worker(settings, tenant_id=args.tenant, prefix=args.prefix,
                      worker_id=args.worker_id, threads=4,
                      topics=Topics(observations, dlq, hints), connectors=FakeConnector)


if __name__ == "__main__":
    sys.exit(main())
