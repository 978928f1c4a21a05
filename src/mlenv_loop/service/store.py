"""The service's own tables beside procrastinate's: the projects it listens to, the annotation
events waiting to become a dataset version, and the runs, one per dataset version and training
target (the idempotency key), with their state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

SCHEMA = """
CREATE TABLE IF NOT EXISTS mlenv_loop_projects (
    project_id integer PRIMARY KEY,
    title text NOT NULL UNIQUE,
    webhook_id integer,
    connected_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mlenv_loop_events (
    id bigserial PRIMARY KEY,
    project_id integer NOT NULL,
    action text NOT NULL,
    annotation_ids integer[] NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    snapshot_job bigint
);
CREATE INDEX IF NOT EXISTS mlenv_loop_events_waiting ON mlenv_loop_events (project_id) WHERE snapshot_job IS NULL;
CREATE TABLE IF NOT EXISTS mlenv_loop_runs (
    id text PRIMARY KEY,
    dataset text NOT NULL,
    version text NOT NULL,
    model text NOT NULL,
    project_id integer NOT NULL,
    annotations integer NOT NULL,
    trigger text NOT NULL,
    runner text NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    handle text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    UNIQUE (dataset, version, model)
);
CREATE TABLE IF NOT EXISTS mlenv_loop_predictions (
    id bigserial PRIMARY KEY,
    request_id text NOT NULL,
    project_id integer,
    task_id integer,
    input_ref text NOT NULL,
    model text NOT NULL,
    model_version text NOT NULL,
    label text NOT NULL,
    shown boolean NOT NULL,
    made_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mlenv_loop_predictions_item ON mlenv_loop_predictions (model, input_ref);
CREATE TABLE IF NOT EXISTS mlenv_loop_live_pairs (
    annotation_id integer PRIMARY KEY,
    project_id integer NOT NULL,
    prediction_id bigint NOT NULL REFERENCES mlenv_loop_predictions (id),
    model text NOT NULL,
    model_version text NOT NULL,
    correct boolean NOT NULL,
    shown boolean NOT NULL,
    paired_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mlenv_loop_triggers (
    id bigserial PRIMARY KEY,
    project_id integer NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    reason text NOT NULL,
    fired_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, kind, subject)
);
"""
STATES = ("queued", "running", "succeeded", "failed")
FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class Waiting:
    count: int
    oldest: datetime | None


def run_id(model: str, version: str) -> str:
    """Deterministic from the idempotency key, so the job's unit name is too: a second start of
    the same version is refused by systemd itself."""
    return f"{model}-{version[:12]}"


class Store:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def _all(self, query: str, *params: Any) -> list[dict[str, Any]]:
        async with self.pool.connection() as connection, connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchall() if cursor.description else []

    async def _one(self, query: str, *params: Any) -> dict[str, Any] | None:
        found = await self._all(query, *params)
        return found[0] if found else None

    async def create_schema(self) -> None:
        async with self.pool.connection() as connection:
            await connection.execute(SCHEMA)

    # Projects
    async def connect_project(self, project_id: int, title: str, webhook_id: int) -> None:
        await self._all(
            "INSERT INTO mlenv_loop_projects (project_id, title, webhook_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (project_id) DO UPDATE SET title = EXCLUDED.title, webhook_id = EXCLUDED.webhook_id",
            project_id, title, webhook_id,
        )  # fmt: skip

    async def keep_projects(self, project_ids: list[int]) -> None:
        """Forget the projects the service no longer trains from (their runs stay)."""
        await self._all("DELETE FROM mlenv_loop_projects WHERE NOT (project_id = ANY(%s::integer[]))",
                        project_ids)  # fmt: skip

    async def project_title(self, project_id: int) -> str | None:
        found = await self._one("SELECT title FROM mlenv_loop_projects WHERE project_id = %s", project_id)
        return found["title"] if found else None

    async def projects(self) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM mlenv_loop_projects ORDER BY project_id")

    # Events
    async def add_event(self, project_id: int, action: str, annotation_ids: tuple[int, ...]) -> Waiting:
        """Stores one accepted webhook and says how many events of the project now wait."""
        await self._all(
            "INSERT INTO mlenv_loop_events (project_id, action, annotation_ids) VALUES (%s, %s, %s)",
            project_id, action, list(annotation_ids),
        )  # fmt: skip
        return await self.waiting(project_id)

    async def waiting(self, project_id: int) -> Waiting:
        found = await self._one(
            "SELECT count(*) AS count, min(received_at) AS oldest FROM mlenv_loop_events "
            "WHERE project_id = %s AND snapshot_job IS NULL",
            project_id,
        )
        return Waiting(count=int(found["count"]) if found else 0, oldest=found["oldest"] if found else None)

    async def projects_waiting(self) -> list[int]:
        found = await self._all("SELECT DISTINCT project_id FROM mlenv_loop_events WHERE snapshot_job IS NULL")
        return [row["project_id"] for row in found]

    async def take_events(self, project_id: int, job_id: int) -> int:
        """Marks the waiting events as this snapshot's (again, on a retry of the same job)."""
        found = await self._all(
            "UPDATE mlenv_loop_events SET snapshot_job = %s WHERE project_id = %s "
            "AND (snapshot_job IS NULL OR snapshot_job = %s) RETURNING id",
            job_id, project_id, job_id,
        )  # fmt: skip
        return len(found)

    # Predictions: the ML backend's for a project's tasks (shown to the annotator or not), and the
    # ones the model server answered other callers with (no project, never shown)
    async def add_predictions(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = ("request_id", "project_id", "task_id", "input_ref", "model", "model_version", "label", "shown")
        async with self.pool.connection() as connection, connection.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO mlenv_loop_predictions ({', '.join(columns)}) "  # noqa: S608 (the names above)
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(row[column] for column in columns) for row in rows],
            )

    async def predictions(self, project_id: int) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM mlenv_loop_predictions WHERE project_id = %s ORDER BY id", project_id)

    # Live accuracy: a human label paired with the prediction made for the same input before it
    async def pair_label(self, project_id: int, model: str, annotation_id: int, input_ref: str, label: str) -> bool:
        """Pairs the label with the model's latest prediction for its input, wherever it was made (a
        changed label replaces its pair); False when the model predicted nothing for that input."""
        found = await self._one(
            "INSERT INTO mlenv_loop_live_pairs (annotation_id, project_id, prediction_id, model, model_version, "
            "correct, shown) SELECT %s, %s, id, model, model_version, label = %s, shown "
            "FROM mlenv_loop_predictions WHERE model = %s AND input_ref = %s ORDER BY id DESC LIMIT 1 "
            "ON CONFLICT (annotation_id) DO UPDATE SET prediction_id = EXCLUDED.prediction_id, "
            "model_version = EXCLUDED.model_version, correct = EXCLUDED.correct, shown = EXCLUDED.shown, "
            "paired_at = now() RETURNING annotation_id",
            annotation_id, project_id, label, model, input_ref,
        )  # fmt: skip
        return found is not None

    async def live_accuracy(self, project_id: int, window: int) -> list[dict[str, Any]]:
        """Per model version: its pairs and correct ones, those the annotator was not shown (no
        anchoring), and the accuracy over its latest `window` pairs (unshown ones when it has
        enough of them); newest version first."""
        return await self._all(
            "WITH ranked AS (SELECT *, row_number() OVER (PARTITION BY model_version, shown "
            "ORDER BY paired_at DESC) AS age, row_number() OVER (PARTITION BY model_version "
            "ORDER BY paired_at DESC) AS age_all FROM mlenv_loop_live_pairs WHERE project_id = %s) "
            "SELECT model, model_version, count(*) AS pairs, count(*) FILTER (WHERE correct) AS correct, "
            "count(*) FILTER (WHERE NOT shown) AS unshown, "
            "count(*) FILTER (WHERE NOT shown AND correct) AS unshown_correct, "
            "count(*) FILTER (WHERE NOT shown AND age <= %s) AS window_unshown, "
            "count(*) FILTER (WHERE NOT shown AND age <= %s AND correct) AS window_unshown_correct, "
            "count(*) FILTER (WHERE age_all <= %s) AS window_all, "
            "count(*) FILTER (WHERE age_all <= %s AND correct) AS window_all_correct, "
            "max(paired_at) AS latest FROM ranked GROUP BY model, model_version "
            "ORDER BY max(prediction_id) DESC",
            project_id, window, window, window, window,
        )  # fmt: skip

    # Triggers beside the annotation count: each fires once for its subject
    async def fire_once(self, project_id: int, kind: str, subject: str, reason: str) -> bool:
        found = await self._one(
            "INSERT INTO mlenv_loop_triggers (project_id, kind, subject, reason) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (project_id, kind, subject) DO NOTHING RETURNING id",
            project_id, kind, subject, reason,
        )  # fmt: skip
        return found is not None

    async def triggers(self, project_id: int) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM mlenv_loop_triggers WHERE project_id = %s ORDER BY id", project_id)

    async def project_id_titled(self, title: str) -> int | None:
        found = await self._one("SELECT project_id FROM mlenv_loop_projects WHERE title = %s", title)
        return found["project_id"] if found else None

    # Runs
    async def add_run(self, *, dataset: str, version: str, model: str, project_id: int, annotations: int,
                      trigger: str, runner: str) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """The run of this dataset version and model, and whether this call created it."""
        created = await self._one(
            "INSERT INTO mlenv_loop_runs (id, dataset, version, model, project_id, annotations, trigger, runner) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dataset, version, model) DO NOTHING RETURNING *",
            run_id(model, version), dataset, version, model, project_id, annotations, trigger, runner,
        )  # fmt: skip
        if created:
            return created, True
        found = await self._one(
            "SELECT * FROM mlenv_loop_runs WHERE dataset = %s AND version = %s AND model = %s", dataset, version, model
        )
        assert found is not None
        return found, False

    async def run(self, identifier: str) -> dict[str, Any] | None:
        return await self._one("SELECT * FROM mlenv_loop_runs WHERE id = %s", identifier)

    async def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM mlenv_loop_runs ORDER BY created_at DESC LIMIT %s", limit)

    async def run_states(self) -> list[dict[str, Any]]:
        """Per project and state: how many runs, and when the latest of them ended (or was made)."""
        return await self._all(
            "SELECT project_id, state, count(*) AS count, max(coalesce(finished_at, created_at)) AS latest "
            "FROM mlenv_loop_runs GROUP BY project_id, state ORDER BY project_id, state"
        )

    async def runs_in(self, *states: str) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM mlenv_loop_runs WHERE state = ANY(%s) ORDER BY created_at", list(states))

    async def set_state(self, identifier: str, state: str, **fields: Any) -> None:
        assert state in STATES and set(fields) <= {"handle", "detail", "result", "started_at", "finished_at"}
        assignments = ", ".join(["state = %s", *(f"{name} = %s" for name in fields)])
        values = [state, *(_jsonb(value) for value in fields.values())]
        await self._all(f"UPDATE mlenv_loop_runs SET {assignments} WHERE id = %s", *values, identifier)  # noqa: S608

    async def start_once(self, identifier: str, start: Callable[[dict[str, Any]], Awaitable[str]]) -> str:
        """Starts a queued run through `start` (which gives the runner's handle) and marks it running.
        The run's row stays locked while it starts, so of two callers only one starts it; a start cut
        short (the service killed) leaves the row queued, and `start` must then find what it began.
        Says what happened."""
        async with self.pool.connection() as connection, connection.transaction():
            cursor = await connection.execute("SELECT * FROM mlenv_loop_runs WHERE id = %s FOR UPDATE", (identifier,))
            found = await cursor.fetchone()
            if found is None:
                return "no such run"
            run = dict(zip([column.name for column in cursor.description or []], found, strict=True))
            if run["state"] != "queued":
                return f"already {run['state']}"
            handle = await start(run)
            await connection.execute(
                "UPDATE mlenv_loop_runs SET state = 'running', handle = %s, started_at = now() WHERE id = %s",
                (handle, identifier),
            )
            return f"started as {handle}"


def _jsonb(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value
