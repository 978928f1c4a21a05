"""`python -m mlenv_loop.service`: the web app and the worker in one process, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys

import boto3
import uvicorn
from botocore.config import Config
from psycopg_pool import AsyncConnectionPool

from mlenv_loop import datasets
from mlenv_loop.errors import LoopError
from mlenv_loop.labelstudio import LabelStudio
from mlenv_loop.service import config as settings
from mlenv_loop.service import tasks
from mlenv_loop.service.runners import runner_for
from mlenv_loop.service.store import Store
from mlenv_loop.service.web import application

log = logging.getLogger("mlenv_loop")


class ServiceStopped(RuntimeError):
    """Half of the service ended without being asked to."""


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: SIGTERM stops the web app and the worker together."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def prepare_schema(pool: AsyncConnectionPool, store: Store) -> None:
    """procrastinate's tables on the first start, then the service's own (idempotent)."""
    async with pool.connection() as connection:
        cursor = await connection.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cursor.fetchone()
    if not (row and row[0]):
        await tasks.app.schema_manager.apply_schema_async()
        log.info("created procrastinate's schema")
    await store.create_schema()


async def serve(config: settings.ServiceConfig) -> None:
    # procrastinate opens its own listening connection with the pool's settings: leave autocommit to it.
    pool = AsyncConnectionPool(config.database_url, min_size=1, max_size=6, open=False)
    await pool.open(wait=True, timeout=60)
    store = Store(pool)
    s3 = boto3.client(
        "s3",
        endpoint_url=config.s3_endpoint,
        region_name=config.s3_region,
        aws_access_key_id=config.s3_access_key,
        aws_secret_access_key=config.s3_secret_key,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )
    context = ssl.create_default_context()
    tasks.use(
        tasks.Context(
            config=config,
            store=store,
            label_studio=LabelStudio(config.label_studio_url, config.label_studio_token, context),
            datasets=datasets.DatasetStore(s3, config.bucket),
            runner=runner_for(config.runner),
        )
    )
    async with tasks.app.open_async(pool):
        await prepare_schema(pool, store)
        try:
            await tasks.connect_now()
        except LoopError as err:
            log.warning("Label Studio not connected yet (the service tries again every 30 s): %s", err)
        server = Server(
            uvicorn.Config(
                application(),
                host=config.host,
                port=config.port,
                lifespan="off",
                access_log=False,
                server_header=False,
                log_config=None,
            )
        )
        worker = asyncio.create_task(
            tasks.app.run_worker_async(
                concurrency=2,
                install_signal_handlers=False,
                update_heartbeat_interval=5,
                stalled_worker_timeout=tasks.STALLED_AFTER_S,
                delete_jobs="successful",
                # Snapshots are scheduled after the quiet time; nothing notifies when one becomes due.
                fetch_job_polling_interval=1,
            )
        )
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(number, stop.set)
        web = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, web, worker], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        worker.cancel()
        outcomes = await asyncio.gather(web, worker, return_exceptions=True)
    await pool.close()
    if not stop.is_set():
        # The web app or the worker ended on its own: fail, so systemd starts the service again.
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        raise ServiceStopped(f"the {'web app' if web.done() and not failures else 'worker'} stopped: {failures}")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # The worker's own lines (a periodic tick every 5 s) would bury the service's; its warnings stay.
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    try:
        config = settings.load()
    except LoopError as err:
        log.error("%s", err)
        return 2
    try:
        asyncio.run(serve(config))
    except ServiceStopped as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
