"""Running the ``polysparse`` command line in the test process."""

from polysparse.bench.cli import main


def run(*args) -> int:
    """``polysparse ARGS...`` (paths and numbers as strings); its exit status."""
    return main([str(a) for a in args])


def bad(capsys, *args) -> str:
    """``polysparse ARGS...`` refused as a user's mistake: exit status 2, no traceback; its message."""
    code = run(*args)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    return captured.err
