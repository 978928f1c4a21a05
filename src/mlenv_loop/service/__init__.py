"""The trigger service: Label Studio's annotation webhooks in, dataset versions and training runs out.

One process on the service host: a small web app (webhooks, run listing, health) and a
procrastinate worker, sharing one PostgreSQL pool. Every trigger the web app accepts is a row in
PostgreSQL before it answers; the worker turns due triggers into dataset versions and runs, and
the runs table, keyed by dataset version and training target, lets each version train once.
"""
