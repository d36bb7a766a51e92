"""Every number a user types is finite and in range, checked when the command line is parsed.

click's FloatRange lets ``nan`` through every bound and ``inf`` through open ends (``bench --duration nan`` never
ended, ``serve --timeout nan`` answered 500, ``eval --conf nan`` printed zeros). The tests walk the whole CLI, so a
float option added later without the finite check fails here.
"""

import click
import pytest
from helpers import assert_user_error, invoke

from edgekit.cli import cli
from edgekit.commands.serve import remote_bench
from edgekit.errors import EdgekitError
from edgekit.options import FloatRange
from edgekit.video.uri import parse_uri


def _commands(group=cli, path=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))
        else:
            yield path + (name,), command
    if group is cli:  # edgekit bench http://BOX:PORT is a command of its own behind bench's argument
        yield ("bench", "http://127.0.0.1:9"), remote_bench


def _float_options():
    for path, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.FloatRange):
                yield path, param


FLOAT_OPTIONS = [(path, param.opts[0]) for path, param in _float_options()]


def test_the_walk_finds_the_float_options():
    """The walk reaches every command: a change that hid commands from it would make the tests below vacuous."""
    found = {(" ".join(path), opt) for path, opt in FLOAT_OPTIONS}
    for expected in [("bench", "--duration"), ("camera", "--fps"), ("camera", "--duration"), ("eval", "--conf"),
                     ("eval", "--iou"), ("compare", "--match-iou"), ("serve", "--timeout"), ("export", "--conf"),
                     ("bench http://127.0.0.1:9", "--rate"), ("serve", "--max-queue-delay-ms")]:
        assert expected in found, sorted(found)


def test_every_float_option_is_the_finite_type():
    loose = ["%s %s" % (" ".join(path), param.opts[0]) for path, param in _float_options()
             if not isinstance(param.type, FloatRange)]
    assert not loose, "use edgekit.options.FloatRange (finite) for: %s" % ", ".join(loose)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("path, opt", FLOAT_OPTIONS, ids=["%s %s" % (" ".join(p), o) for p, o in FLOAT_OPTIONS])
def test_non_finite_numbers_are_refused_at_parse_time(path, opt, value):
    """One line naming the option, exit 2, before any model or source is opened (none is given here)."""
    result = invoke([*path, opt, value])
    assert result.exit_code == 2
    assert_user_error(result, opt, "not a finite number")


@pytest.mark.parametrize("option", ["--flops", "--params"])
@pytest.mark.parametrize("value", ["nan", "nan%", "inf", "inf%", "0", "100%", "abc"])
def test_prune_budgets_are_checked_at_parse_time(option, value):
    assert_user_error(invoke(["prune", "--data", "missing.yaml", option, value]), option, value)


@pytest.mark.parametrize("uri", ["synthetic://?fps=nan", "synthetic://?fps=inf", "synthetic://?fps=-inf",
                                 "synthetic://?width=nan", "synthetic://?seed=inf"])
def test_non_finite_uri_parameters_are_refused(uri):
    with pytest.raises(EdgekitError, match="must be|not a valid"):
        parse_uri(uri)


def test_finite_values_still_pass():
    assert parse_uri("synthetic://?fps=15.5").params["fps"] == 15.5
    assert FloatRange(0, 1).convert("0.25", None, None) == 0.25
