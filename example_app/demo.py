"""Set the example app up and serve it: what ``make demo`` runs.

    python -m example_app.demo [--instance DIR] [--count N] [--reset] [--warm]
                               [--host HOST] [--port PORT] [--no-serve]

The steps are the real commands, run with this Python:

1. ``flask --app example_app init-db``: create the tables;
2. ``flask --app example_app seed``: draw sample photos, save them through the
   models (their Optimistic specs are generated on commit);
3. ``flask --app example_app imagekit generate example_app:featured``: generate
   the featured banners (JustInTime: else the first page would wait for them).
   The gallery's cards are OnRequest: each is made by the first browser that
   asks for it, so the first visit shows them being made. ``--warm`` makes
   every cache file of every source group instead (``imagekit generate`` with
   no pattern; a progress bar on a terminal), cards included;
4. serve the app on ``http://HOST:PORT/`` until Ctrl+C (``--port 0``: any free
   port). ``--no-serve`` stops after step 3.

The database and media files live in the app's instance folder (``--instance``,
else ``$EXAMPLE_APP_INSTANCE_PATH``, else Flask's default ``instance/``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import typing as t

from . import INSTANCE_PATH_ENV

__all__ = ["main", "serve"]

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m example_app.demo",
        description="Set the flask_imagekit example app up and serve it.",
    )
    parser.add_argument("--instance", help="instance folder (database and media files)")
    parser.add_argument("--count", type=int, default=None, help="how many photos to draw")
    parser.add_argument("--reset", action="store_true", help="delete earlier photos first")
    parser.add_argument(
        "--warm", action="store_true", help="make every cache file now, the cards too"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=5000, help="port to serve on; 0: any free")
    parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
    return parser


def _environment(instance: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if instance:
        env[INSTANCE_PATH_ENV] = os.path.abspath(instance)
    # The commands import example_app from this checkout, whatever the working directory.
    paths = [PROJECT_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _run(title: str, args: list[str], env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "flask", "--app", "example_app", *args]
    print(f"\n==> {title}\n    $ flask --app example_app {shlex.join(args)}", flush=True)
    done = subprocess.run(command, env=env, check=False)
    if done.returncode:
        print(f"demo: `{shlex.join(['flask', *command[3:]])}` failed", file=sys.stderr)
        raise SystemExit(done.returncode)


def serve(host: str, port: int) -> None:
    """Serve the example app (threaded werkzeug server) until interrupted."""
    from werkzeug.serving import make_server

    from . import create_app

    app = create_app()
    server = make_server(host, port, app, threaded=True)
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"\n==> Serving the example app on http://{shown_host}:{server.server_port}/ "
        "(press Ctrl+C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopped.", flush=True)
    finally:
        server.server_close()


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    args = _parser().parse_args(argv)
    env = _environment(args.instance)
    if args.instance:
        os.environ[INSTANCE_PATH_ENV] = env[INSTANCE_PATH_ENV]
    seed = ["seed"]
    if args.count is not None:
        seed += ["--count", str(args.count)]
    if args.reset:
        seed.append("--reset")
    _run("Creating the database tables", ["init-db"], env)
    _run("Drawing sample photos and saving them through the models", seed, env)
    if args.warm:
        _run("Generating every cache file of every source group", ["imagekit", "generate"], env)
    else:
        generate = ["imagekit", "generate", "example_app:featured"]
        _run("Generating the featured banners (the cards wait for a browser)", generate, env)
    if args.no_serve:
        where = f" --instance {shlex.quote(args.instance)}" if args.instance else ""
        print(f"\nDone. Serve it with: python -m example_app.demo{where}")
        return 0
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
