"""Helpers shared by the CLI tests."""

from click.testing import CliRunner

from edgekit.cli import cli


def invoke(args, runner=None):
    """Invoke the edgekit CLI in-process; returns the click Result (exceptions stay in the result)."""
    return (runner or CliRunner()).invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """A user error: non-zero exit, no traceback, one 'error:' line naming what went wrong."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), errors[0]
