"""The sweep runs on its own queue, consumed by a worker of its own in docker-compose, so it does not wait behind a
backlog of action runs after a broker outage."""

import re
from pathlib import Path

from automations.tasks import action_run_task, action_runs_sweep_task
from paminga.celery import app

ROOT = Path(__file__).resolve().parents[2]


def _queue(task) -> str:
    route = app.amqp.router.route({}, task.name, args=(), kwargs={})
    return route["queue"].name


def test_the_sweep_has_its_own_queue_and_action_runs_keep_the_default():
    assert _queue(action_runs_sweep_task) == "sweep"
    assert _queue(action_run_task) == app.conf.task_default_queue


def test_compose_runs_a_worker_for_the_sweep_queue_and_requires_the_env_file():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"celery -A paminga worker .*--queues sweep", compose)
    assert "required: false" not in compose
    assert re.search(r"env_file:\n\s+- \.env\n", compose)
