"""MLflow's Prometheus figures, served on loopback without MLflow's auth.

The tracking server's workers (started with --expose-prometheus DIR) write their figures into DIR,
prometheus_client's multiprocess files; MLflow serves them at /metrics to its admins only. This reads
the same files with the same library, as the same service user, and answers any GET with their sum:
Prometheus scrapes it here without an admin's password. Usage: metrics_exporter.py DIR ADDRESS PORT
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # a scrape every few seconds is no news
        pass


def main() -> None:
    folder, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    make_server(address, port, make_wsgi_app(registry), handler_class=QuietHandler).serve_forever()


if __name__ == "__main__":
    main()
