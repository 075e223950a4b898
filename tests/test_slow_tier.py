"""The slow tier (tests/conftest.py): which tests a plain `pytest` leaves out, and that CI's run still has them all
within reach (`pytest -m slow`)."""

from pathlib import Path

from conftest import slow_left_out

HERE = Path(__file__).resolve().parent
SLOW_FILE = HERE / "test_compile_cache.py"


def test_a_plain_run_leaves_slow_tests_out_unless_their_file_is_named_or_m_chooses():
    assert slow_left_out(SLOW_FILE, True, named=[HERE.parent], markexpr="")  # `pytest` from the repository
    assert slow_left_out(SLOW_FILE, True, named=[HERE], markexpr="")  # `pytest tests`
    assert not slow_left_out(SLOW_FILE, True, named=[SLOW_FILE], markexpr="")  # the file, or a test in it, named
    assert not slow_left_out(SLOW_FILE, True, named=[HERE], markexpr="slow")  # `pytest -m slow`
    assert not slow_left_out(SLOW_FILE, False, named=[HERE], markexpr="")  # other tests always run


def test_the_slow_tests_are_the_compile_cache_end_to_end_ones():
    """What CI leaves out is only what the README and the GPU session's suite say (`pytest -m slow` runs them)."""
    marked = {(p.name, line.strip()) for p in HERE.glob("test_*.py") for line in p.read_text().splitlines()
              if line.strip().startswith("@pytest.mark.slow")}
    assert {name for name, _ in marked} == {"test_compile_cache.py", "test_build.py"}
    assert "pytest -q -m slow tests" in (HERE.parent / "benchmarks" / "gpu_session.sh").read_text()
