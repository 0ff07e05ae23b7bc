#!/usr/bin/env python3
"""Celery end-to-end check: check.py AMQP_URL prints `celery pass` or `celery FAIL <reason>`.

Starts a real Celery worker (transport pyamqp, result backend rpc://) as a child
process against the broker, sends tasks, reads their results back, then stops the
worker by its PID. Everything is bounded by timeouts. Worker output goes to stderr.

check.py AMQP_URL --vhost-user is scenario 17 (`17 pass` or `17 FAIL <reason>`): the
same, as a non-guest user on its own vhost (interop/definitions.json creates them;
INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others), then that user refused on
"/" with 530 at connection.open.
"""
import os
import signal
import subprocess
import sys
import time

DIR = os.path.dirname(os.path.abspath(__file__))
OVERALL = float(os.environ.get("INTEROP_CELERY_TIMEOUT", "90"))


USER = os.environ.get("INTEROP_USER", "interop")
PASSWORD = os.environ.get("INTEROP_PASS", "interop-pw")
VHOST = os.environ.get("INTEROP_VHOST", "interop-vh")


def broker_url(url):
    if url.startswith("amqp://"):
        return "pyamqp://" + url[len("amqp://"):]
    return url


def as_user(url, vhost):
    """URL with the scenario user's credentials and `vhost`, on URL's host and port."""
    from urllib.parse import quote, urlsplit
    u = urlsplit(url)
    hostport = u.netloc.rsplit("@", 1)[-1]
    return "%s://%s:%s@%s/%s" % (u.scheme, quote(USER, safe=""), quote(PASSWORD, safe=""),
                                 hostport, quote(vhost, safe=""))


def refused_on_root(url):
    """Raises unless the scenario user is refused on "/" with RabbitMQ's 530."""
    import amqp
    from kombu import Connection
    expected = "NOT_ALLOWED - access to vhost '/' refused for user '%s'" % USER
    conn = Connection(broker_url(as_user(url, "/")), connect_timeout=10)
    try:
        conn.connect()
    except amqp.exceptions.NotAllowed as e:
        if (e.reply_code, e.reply_text) != (530, expected):
            raise AssertionError("refused with %r %r" % (e.reply_code, e.reply_text))
        return
    finally:
        conn.release()
    raise AssertionError("connection.open on / accepted")


def stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)  # warm shutdown
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


class Aborted(Exception):
    pass


WORKER = None


def on_term(signum, frame):
    # stop the worker at once: the runner is aborting
    if WORKER is not None and WORKER.poll() is None:
        try:
            os.kill(WORKER.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    raise Aborted("signal %d" % signum)


def main(argv):
    global WORKER
    signal.signal(signal.SIGTERM, on_term)
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    url, label = argv[1], "celery"
    if "--vhost-user" in argv:
        url, label = as_user(url, VHOST), "17"
    os.environ["INTEROP_CELERY_BROKER"] = broker_url(url)
    sys.path.insert(0, DIR)
    try:
        import celery
        from interop_celery_tasks import add, app, echo
    except Exception as e:
        print("%s FAIL cannot import celery: %s" % (label, e), flush=True)
        return 0
    print("celery %s, kombu transport pyamqp" % celery.__version__, file=sys.stderr)
    start = time.time()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "interop_celery_tasks", "worker",
         "--pool=solo", "--concurrency=1", "-Q", "interop.celery.tasks",
         "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", "interop-celery@%h", "--loglevel=INFO"],
        cwd=DIR, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=DIR + os.pathsep + os.environ.get("PYTHONPATH", "")))
    WORKER = worker
    result = label + " FAIL unknown"
    try:
        left = lambda: max(1.0, OVERALL - (time.time() - start))
        r1 = add.apply_async((2, 3))
        v1 = r1.get(timeout=min(60, left()))
        if v1 != 5:
            raise AssertionError("add(2, 3) returned %r" % (v1,))
        if worker.poll() is not None:
            raise AssertionError("worker exited with %s" % worker.returncode)
        rs = [echo.apply_async(("m%d" % i,)) for i in range(5)]
        vs = [r.get(timeout=min(30, left())) for r in rs]
        if [v["echo"] for v in vs] != ["m%d" % i for i in range(5)]:
            raise AssertionError("echo results %r" % vs)
        if any(v["pid"] != worker.pid for v in vs):
            raise AssertionError("tasks not run by the worker process %d: %r" % (worker.pid, vs))
        if r1.state != "SUCCESS":
            raise AssertionError("state %s" % r1.state)
        print("tasks done after %.1fs" % (time.time() - start), file=sys.stderr)
        if label == "17":
            refused_on_root(argv[1])
        result = label + " pass"
    except Aborted as e:
        result = "%s FAIL aborted by %s" % (label, e)
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=5)
    except Exception as e:
        msg = " ".join(("%s: %s" % (type(e).__name__, e)).split())[:200]
        result = label + " FAIL " + msg
    finally:
        t = time.time()
        try:
            stop(worker)
        except Aborted:
            result = label + " FAIL aborted while stopping the worker"
        print("worker stopped in %.1fs" % (time.time() - t), file=sys.stderr)
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                ch = conn.channel()
                ch.queue_delete("interop.celery.tasks")
                ch.exchange_delete("interop.celery.tasks")
        except Exception as e:
            print("cleanup: %s" % e, file=sys.stderr)
    print(result, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
