"""Developer sessions: `nox -s tests` (the default suite), `lint`, `slow` (long sweeps),
`bench` (benchmarks/ -> benchmarks/results/*.json)."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


def _install(session):
    session.install("-e", ".[dev]")


@nox.session
def tests(session):
    """The default suite: correctness only, slow sweeps excluded (< ~10 min on 2 cores)."""
    _install(session)
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def slow(session):
    """Long sweeps and runs marked @pytest.mark.slow."""
    _install(session)
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bench(session):
    """Benchmarks: results as JSON under benchmarks/results/ (tables in the README)."""
    _install(session)
    session.run("python", "benchmarks/golden_speed.py")
