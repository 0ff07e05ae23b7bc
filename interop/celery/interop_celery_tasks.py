"""Celery app used by check.py: broker from INTEROP_CELERY_BROKER, result backend rpc://."""
import os

from celery import Celery

app = Celery("interop_celery", broker=os.environ["INTEROP_CELERY_BROKER"], backend="rpc://")
app.conf.update(
    task_default_queue="interop.celery.tasks",
    task_default_exchange="interop.celery.tasks",
    task_default_routing_key="interop.celery.tasks",
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    worker_prefetch_multiplier=4,
    result_expires=60,
)


@app.task(name="interop.celery.add")
def add(x, y):
    return x + y


@app.task(name="interop.celery.echo")
def echo(value):
    return {"echo": value, "pid": os.getpid()}
