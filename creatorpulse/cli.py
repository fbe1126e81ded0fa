"""``creatorpulse``: the command line of CreatorPulse.

The settings are read once here and passed to what each command runs. Expected failures (bad
settings, a part of the stack that cannot start, a failed migration) print one clear message
and exit with status 1; nothing expected ends in a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from creatorpulse import __version__
from creatorpulse.settings import Settings, SettingsError

if TYPE_CHECKING:
    from creatorpulse.flink_jobs import FlinkRest
    from creatorpulse.stack import Stack

Handler = Callable[[argparse.Namespace, Settings], int]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    rows = settings.describe()
    width = max(len(env) for env, _, _ in rows)
    for env, shown, doc in rows:
        print(f"{env:<{width}}  {shown}\n{'':<{width}}  {doc}")
    return 0


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.sinks.migrate import migrate
    from creatorpulse.stack import Stack
    from creatorpulse.stack.flink import Flink

    stack = Stack(settings, say)
    started = time.monotonic()
    timings = stack.up(only=args.only, apps=args.apps)
    if "postgres" in timings:
        import psycopg

        with psycopg.connect(settings.database_dsn.reveal(), autocommit=True) as conn:
            migrate(conn, say)
    say(f"stack up in {time.monotonic() - started:.1f}s "
        f"({', '.join(f'{k} {v:.1f}s' for k, v in timings.items())})")
    print()
    _print_status(stack, only=list(timings))
    if "flink" in timings:
        flink = stack.part("flink")
        assert isinstance(flink, Flink)
        print(f"\nFlink web UI: {flink.address}")
        print(f"Submit a job: FLINK_CONF_DIR={settings.flink_conf_dir} "
              f"{sys.prefix}/bin/flink run -d -py jobs/<job>.py -pyclientexec {sys.executable}")
    return 0


def cmd_stack_down(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.stack import Stack

    stopped = Stack(settings, say).down(only=args.only)
    say(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")
    return 0


def cmd_stack_status(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.stack import Stack

    return 0 if _print_status(Stack(settings, say)) else 3


def _print_status(stack: Stack, only: list[str] | None = None) -> bool:
    """A table of the parts (or ``only`` those); True when all of them are healthy."""
    rows = [("part", "run by", "health", "address", "detail")]
    healthy = True
    for part, health in stack.status():
        if only is not None and part.name not in only:
            continue
        healthy &= health.ok
        rows.append((part.name, "stack" if part.managed else "external",
                     "up" if health.ok else "DOWN", part.address, health.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]))
    return healthy


def cmd_stack_install(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.stack import Stack

    installed = Stack(settings, say).install()
    say(f"{len(installed)} jars in place")
    return 0


def cmd_stack_logs(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.stack import Stack
    from creatorpulse.stack.process import tail_file

    stack = Stack(settings, say)
    procs = stack.processes()
    if args.part:
        procs = [p for p in procs if p.name.startswith(args.part)]
        if not procs:
            names = sorted({p.name for p in stack.processes()})
            print(f"no process named {args.part!r}; choose from {', '.join(names)}",
                  file=sys.stderr)
            return 2
    for proc in procs:
        print(f"==> {proc.log_file} <==")
        print(tail_file(proc.log_file, args.lines) or "(empty)")
    if args.follow:
        return _follow([p.log_file for p in procs])
    return 0


def _follow(paths: list[os.PathLike[str]]) -> int:
    offsets = {p: os.path.getsize(p) if os.path.exists(p) else 0 for p in paths}
    try:
        while True:
            for path, offset in offsets.items():
                if os.path.exists(path) and os.path.getsize(path) > offset:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        sys.stdout.write(f.read().decode(errors="replace"))
                        offsets[path] = f.tell()
            sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    import psycopg

    from creatorpulse.sinks.migrate import migrate

    try:
        conn = psycopg.connect(settings.database_dsn.reveal(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {exc}\n"
              "Start it with `creatorpulse stack up` or set CREATORPULSE_DATABASE_URL.",
              file=sys.stderr)
        return 1
    with conn:
        migrate(conn, say)
    return 0


def _rest(settings: Settings) -> FlinkRest:
    from creatorpulse.flink_jobs import FlinkRest
    from creatorpulse.stack.flink import Flink

    return FlinkRest(Flink(settings, say).address)


def cmd_jobs_submit(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.flink_jobs import submit

    if args.if_not_running:
        running = _rest(settings).running(f"creatorpulse-{args.job}")
        if running is not None:
            say(f"creatorpulse-{args.job} is already running as {running.job_id}")
            return 0
    say(f"submitting jobs/{args.job}.py to the session cluster")
    job_id = submit(settings, args.job, args.job_args, savepoint=args.from_savepoint)
    say(f"job {job_id} submitted; watch it at {_rest(settings).base_url}/#/job/running/{job_id}")
    return 0


def cmd_jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    jobs = _rest(settings).jobs()
    if not jobs:
        print("no jobs")
    for job in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(job.start_time_ms / 1000))
        print(f"{job.job_id}  {job.state:<10} {started} UTC  {job.name}")
    return 0


def _find_job(rest: FlinkRest, wanted: str) -> str:
    from creatorpulse.flink_jobs import JobError

    for job in rest.jobs():
        if job.state == "RUNNING" and wanted in (job.job_id, job.name):
            return job.job_id
    msg = f"no running job with id or name {wanted!r} (see `creatorpulse jobs list`)"
    raise JobError(msg)


def cmd_jobs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    rest = _rest(settings)
    job_id = _find_job(rest, args.job)
    say(f"cancelling {job_id}")
    rest.cancel(job_id)
    say(f"{job_id} cancelled")
    return 0


def cmd_jobs_savepoint(args: argparse.Namespace, settings: Settings) -> int:
    rest = _rest(settings)
    job_id = _find_job(rest, args.job)
    say(f"taking a savepoint of {job_id}{' and stopping it' if args.stop else ''}")
    say(f"savepoint: {rest.savepoint(job_id, stop=args.stop)}")
    return 0


def cmd_jobs_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the running job with a savepoint and start the current code from it."""
    from creatorpulse.flink_jobs import submit

    rest = _rest(settings)
    name = args.running or f"creatorpulse-{args.job}"
    job_id = _find_job(rest, name)
    say(f"stopping {name} ({job_id}) with a savepoint")
    location = rest.savepoint(job_id, stop=True)
    say(f"savepoint at {location}; starting jobs/{args.job}.py from it")
    new_id = submit(settings, args.job, args.job_args, savepoint=location)
    say(f"{name} upgraded: {job_id} -> {new_id}")
    return 0


def cmd_jobs_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.flink_jobs import follow, submit

    job_args = ["--since", args.start, "--until", args.end, *args.job_args]
    say(f"reconciling {args.start} .. {args.end} from the raw observation log")
    job_id = submit(settings, "reconcile", job_args)
    follow(_rest(settings), job_id, say, timeout=args.timeout)
    say(f"reconciled {args.start} .. {args.end} (job {job_id})")
    return 0


def cmd_jobs_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out the recorded backfill requests (once, or whenever one is announced)."""
    import contextlib
    from datetime import datetime

    import psycopg

    from creatorpulse.backfills import run_pending
    from creatorpulse.flink_jobs import JobError, follow, submit
    from creatorpulse.sinks.registry import CHANNEL

    dsn = settings.database_dsn.reveal()

    def connect() -> psycopg.Connection:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def reconcile(start: datetime, end: datetime) -> str:
        job_id = submit(settings, "reconcile", ["--since", start.isoformat(),
                                                "--until", end.isoformat(), *args.job_args])
        rest = _rest(settings)
        try:
            follow(rest, job_id, say, timeout=args.timeout)
        except JobError:
            with contextlib.suppress(JobError):  # gone already, or finished meanwhile
                if rest.job(job_id)["state"] not in ("FAILED", "CANCELED", "FINISHED"):
                    rest.cancel(job_id)  # out of time: it must not go on unattended
            raise
        return job_id

    taken = run_pending(connect, reconcile, say)
    if not args.watch:
        say(f"{taken} backfill request{'' if taken == 1 else 's'} carried out")
        return 0
    say("watching for backfill requests (NOTIFY creatorpulse_registry; every minute anyway)")
    while True:
        try:
            with connect() as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                run_pending(connect, reconcile, say)  # any made while nobody listened
                while True:
                    # A registry announcement (a backfill request is one) or a quiet minute:
                    # look for waiting requests; none is one cheap statement.
                    for _ in listener.notifies(timeout=60, stop_after=1):
                        pass
                    run_pending(connect, reconcile, say)
        except psycopg.Error as exc:
            say(f"database unavailable ({type(exc).__name__}); retrying in 5 s")
            time.sleep(5)


APP_NAMES = ("simulators", "webhooks", "sources", "api", "backfills")
COMMAND_MODULES = (
    "creatorpulse.sources.simulator.cli",  # simulate, enrol
    "creatorpulse.sources.webhooks.cli",  # webhooks serve
    "creatorpulse.sources.commands",  # influencers, accounts, tokens, sources run
    "creatorpulse.graphql.commands",  # api serve|token|demo|schema
)


def build_parser() -> argparse.ArgumentParser:
    from creatorpulse.flink_jobs import SUBMITTABLE

    parser = argparse.ArgumentParser(
        prog="creatorpulse",
        description="CreatorPulse: real-time influencer engagement analytics. "
        "Settings come from CREATORPULSE_* environment variables and .env; "
        "see `creatorpulse settings`.",
    )
    parser.add_argument("--version", action="version", version=f"creatorpulse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("settings", help="show every setting, its value and meaning")
    p.set_defaults(handler=cmd_settings)


    stack = commands.add_parser(
        "stack",
        help="run the local stack: PostgreSQL, Redis, Kafka, Flink",
        description="Start, stop and inspect the local stack. Parts with a URL in the settings "
        "are used as they are; the others run under the state folder.",
    )
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    p = stack_commands.add_parser(
        "up", help="start every part, wait until each is ready, apply database migrations"
    )
    p.add_argument("--only", nargs="+",
                   choices=["postgres", "redis", "kafka", "flink", *APP_NAMES],
                   help="start only these parts")
    p.add_argument("--apps", action="store_true",
                   help="also run CreatorPulse's own programs in the background: the platform "
                   "simulators, the webhook receiver, the sources and the GraphQL API (the demo)")
    p.set_defaults(handler=cmd_stack_up)
    p = stack_commands.add_parser(
        "install", help="fetch the Kafka broker and Flink connector jars with Maven (idempotent)"
    )
    p.set_defaults(handler=cmd_stack_install)
    p = stack_commands.add_parser("down", help="stop what `stack up` started, nothing else")
    p.add_argument("--only", nargs="+",
                   choices=["postgres", "redis", "kafka", "flink", *APP_NAMES],
                   help="stop only these parts (e.g. the apps, leaving the stack running)")
    p.set_defaults(handler=cmd_stack_down)
    p = stack_commands.add_parser(
        "status", help="each part, its address and health (exit 3 when one is down)"
    )
    p.set_defaults(handler=cmd_stack_status)
    p = stack_commands.add_parser("logs", help="the end of each part's log")
    p.add_argument("part", nargs="?", help="only this part (postgres, redis, kafka, flink)")
    p.add_argument("-n", "--lines", type=int, default=40, help="lines per log (default 40)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(handler=cmd_stack_logs)

    jobs = commands.add_parser(
        "jobs",
        help="submit and operate the Flink jobs of jobs/",
        description="The Flink jobs on the session cluster. Each is also a plain PyFlink program: "
        "FLINK_CONF_DIR=flink-conf flink run -d -py jobs/<job>.py. Arguments after -- go to the "
        "job itself (see `python jobs/<job>.py --help`).",
    )
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    p = job_commands.add_parser("submit", help="submit jobs/<job>.py (flink run -d -py ...)")
    p.add_argument("job", choices=SUBMITTABLE)
    p.add_argument("--from-savepoint", metavar="PATH", help="start from this savepoint")
    p.add_argument("--if-not-running", action="store_true",
                   help="do nothing when a job of that name is already running")
    p.set_defaults(handler=cmd_jobs_submit)
    p = job_commands.add_parser(
        "reconcile",
        help="recompute buckets, windows and figures of a range from the raw log (batch)",
        description="Recompute the minute buckets that start in [FROM, TO) and the windows and "
        "figures that end in (FROM, TO] from the raw observation log, late readings included. "
        "Idempotent; also a backfill.",
    )
    p.add_argument("--from", dest="start", required=True, metavar="FROM",
                   help="ISO 8601 time with zone, e.g. 2026-11-23T00:00:00Z")
    p.add_argument("--to", dest="end", required=True, metavar="TO", help="ISO 8601 time with zone")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    p.set_defaults(handler=cmd_jobs_reconcile)
    p = job_commands.add_parser(
        "backfill",
        help="carry out the recorded backfill requests (requestBackfill) with the reconcile job",
        description="Claim every backfill request still waiting, reconcile each merged range "
        "from the raw observation log, and mark the requests done or failed (with the reason).",
    )
    p.add_argument("--watch", action="store_true",
                   help="keep running: carry out requests as they are announced")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds one reconcile may take (default 3600)")
    p.set_defaults(handler=cmd_jobs_backfill)
    p = job_commands.add_parser("list", help="jobs on the cluster, newest first")
    p.set_defaults(handler=cmd_jobs_list)
    p = job_commands.add_parser("cancel", help="cancel a running job")
    p.add_argument("job", help="job id or name")
    p.set_defaults(handler=cmd_jobs_cancel)
    p = job_commands.add_parser("savepoint", help="take a savepoint of a running job")
    p.add_argument("job", help="job id or name")
    p.add_argument("--stop", action="store_true", help="stop the job once the savepoint is taken")
    p.set_defaults(handler=cmd_jobs_savepoint)
    p = job_commands.add_parser(
        "upgrade", help="stop a running job with a savepoint and start the current code from it"
    )
    p.add_argument("job", choices=["engagement"])
    p.add_argument("--running", metavar="ID_OR_NAME",
                   help="the running job to replace (default: creatorpulse-<job>)")
    p.set_defaults(handler=cmd_jobs_upgrade)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_commands.add_parser("migrate", help="apply the numbered SQL migrations (idempotent)")
    p.set_defaults(handler=cmd_db_migrate)

    # Each part of the system adds its own commands (their imports stay light).
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" belongs to the job (`jobs submit engagement -- --group-id g`).
    cut = words.index("--") if "--" in words else len(words)
    args = build_parser().parse_args(words[:cut])
    args.job_args = words[cut + 1:]
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"error: bad configuration: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from creatorpulse.flink_jobs import JobError
    from creatorpulse.sinks.migrate import MigrationError
    from creatorpulse.stack.process import StackError

    try:
        return int(args.handler(args, settings))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.log_tail:
            print(f"--- last lines of the {exc.part} log ---\n{exc.log_tail}", file=sys.stderr)
        return 1
    except (MigrationError, JobError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
