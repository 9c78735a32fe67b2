"""Developer sessions: `nox -s tests` (the default suite), `lint`, `slow` (long sweeps),
`sim` (a model dir on the simulated accelerator), `synth` (real FPGA builds), `bench`
(benchmarks/ -> benchmarks/results/*.json)."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


def _install(session):
    session.install("-e", ".[dev]")


# one pytest-xdist worker per CPU, each test module on one worker (its module-scoped fixtures
# built once; see tests/conftest.py)
PARALLEL = ("-n", "auto", "--dist", "loadscope")


@nox.session
def tests(session):
    """The default suite: correctness only, slow sweeps excluded (< ~10 min on 2 cores). Extra
    arguments go to pytest (`nox -s tests -- -n 0 tests/test_golden.py`: one file, one process)."""
    _install(session)
    session.run("pytest", "-m", "not slow", "-W", "error::DeprecationWarning", *PARALLEL, *session.posargs)


@nox.session
def slow(session):
    """Long sweeps and runs marked @pytest.mark.slow."""
    _install(session)
    session.run("pytest", "-m", "slow", "-W", "error::DeprecationWarning", *PARALLEL, *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def sim(session):
    """Run a model dir on the simulated accelerator, layer by layer, comparing every output
    byte, then (examples/tiny only) the whole compiled image on the full system (`--system`,
    every stored layer output against the image interpreter; ~4 min on pysim): `nox -s sim`
    or `nox -s sim -- DIR [--backend verilator] [--vcd F]` (layer by layer only)."""
    _install(session)
    session.run("python", "-m", "sim", *session.posargs)
    if not session.posargs:
        session.run("python", "-m", "sim", "--system", "--memory", "sdram-ulx3s")


@nox.session
def synth(session):
    """Real YoWASP builds: the accelerator self-test on ULX3S-85F (tile 2, unroll 1) and the
    iCE40 flow on iCEBreaker; checks the bitstreams and report.json. ~5 min on 2 idle cores,
    plus ~1-2 min the first time yosys' WebAssembly is compiled (YOWASP_CACHE_DIR keeps it)."""
    _install(session)
    session.run("pytest", "-m", "slow", "tests/test_build_slow.py", *session.posargs)


@nox.session
def bench_train(session):
    """The accuracy table + plot and the train-step cost (Fashion-MNIST / ResNet-20; ~1-2 h on
    2 cores)."""
    _install(session)
    session.run("python", "-m", "train", "--mode", "fp32", "--epochs", "4", "--out", "runs/fp32", "--no-progress")
    session.run("python", "benchmarks/accuracy.py", "--init", "runs/fp32/model.pt")
    session.run("python", "benchmarks/train_step.py")


@nox.session
def bench(session):
    """Benchmarks: results as JSON under benchmarks/results/ (tables in the README)."""
    _install(session)
    session.run("python", "benchmarks/golden_speed.py")
    session.run("python", "benchmarks/perf_sim_vs_model.py")
    session.run("python", "benchmarks/generate_time.py")
    session.run("python", "benchmarks/plan_boards.py")
    session.run("python", "benchmarks/sdram_bandwidth.py")
