"""``cli_common``: an error's field -> the option the user typed, and the one-line message."""

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field, ValidationError, model_validator

from neuroscribe.errors import InvalidInput
from neuroscribe.service.cli_common import as_field, error_line, flag_for, user_errors, validation_field

FIELDS = {"top_k_percent": "top_percent", "stability.folds": "folds", "dataset.*": "dataset",
          "concepts.*": "concepts", "label": ("label_col", "dataset")}


@click.command()
@click.option("--top-percent", type=float, default=1.0)
@click.option("--folds", type=int, default=3)
@click.option("--dataset", type=click.Path(path_type=Path), default=None)
@click.option("--concept", "concepts", multiple=True)
@click.option("--label-col", default=None)
@click.option("--n-pos", type=int, default=20)
@click.option("--men-concepts", type=int, default=None)
@click.option("--flag/--no-flag", default=True)
def cmd(**kw):
    pass


def _ctx(args):
    return cmd.make_context("cmd", list(args))


@pytest.mark.parametrize("field, args, flag", [
    ("top_k_percent", [], "--top-percent"),        # the table
    ("n_pos", [], "--n-pos"),                      # named like the parameter
    ("men-concepts", [], "--men-concepts"),        # an InvalidInput field written with a dash
    ("stability.folds", [], "--folds"),
    ("dataset.labels", [], "--dataset"),           # PREFIX.*
    ("dataset", ["--dataset", "d.tsv"], "--dataset"),
    ("concepts.1.name", [], "--concept"),          # an index is *
    ("concepts.1", [], "--concept"),               # a trailing index is dropped
    ("label", [], "--label-col"),                  # the first of a tuple, when none is set
    ("label", ["--dataset", "d.tsv"], "--dataset"),  # the first the user set
    ("label", ["--dataset", "d.tsv", "--label-col", "y"], "--label-col"),
    ("d.tsv:3", ["--dataset", "d.tsv"], "--dataset"),  # FILE:LINE of a file an option gave
    ("folds.x", [], None),                         # a field below a parameter is not it
    ("seed", [], None),
    ("job", [], None),
    ("other.tsv:3", ["--dataset", "d.tsv"], None),
])
def test_flag_for(field, args, flag):
    ctx = _ctx(args)
    param = flag_for(field, cmd, FIELDS, ctx.params)
    assert (param.opts[0] if param else None) == flag


@pytest.mark.parametrize("field, message, args, line", [
    ("top_k_percent", "Input should be greater than 0", ["--top-percent", "0"],
     "--top-percent: 0 is not accepted: Input should be greater than 0"),
    ("top_k_percent", "Input should be less than or equal to 100", ["--top-percent", "100.5"],
     "--top-percent: 100.5 is not accepted: Input should be less than or equal to 100"),
    ("concepts", "concepts must be unique", ["--concept", "a", "--concept", "a"],
     "--concept: 'a', 'a' is not accepted: concepts must be unique"),
    # the message shows the value already (quoted text, a path as written): not twice
    ("label_col", "d.tsv has no column 'y' (columns: text)", ["--label-col", "y"],
     "--label-col: d.tsv has no column 'y' (columns: text)"),
    ("dataset", "/x/d.tsv is empty: no sentences", ["--dataset", "/x/d.tsv"], "--dataset: /x/d.tsv is empty: no sentences"),
    ("d.tsv:3", "empty text", ["--dataset", "d.tsv"], "--dataset: d.tsv:3: empty text"),
    # an unquoted text that merely occurs in the message is still echoed
    ("label_col", "the label column has a single class", ["--label-col", "label"],
     "--label-col: 'label' is not accepted: the label column has a single class"),
    # nothing to echo: an option left unset, an empty list, a switch
    ("concepts", "give at least one --concept", [], "--concept: give at least one --concept"),
    ("flag", "not here", [], "--flag: not here"),
    # the field repeated at the head of the message (an API error, a nested check) is dropped
    ("stability.folds", "folds: Input should be less than or equal to 50", ["--folds", "100"],
     "--folds: 100 is not accepted: Input should be less than or equal to 50"),
    # no option: the field keeps its name
    ("min_words", "must be <= max_words", [], "min_words: must be <= max_words"),
])
def test_error_line(field, message, args, line):
    assert error_line(field, message, FIELDS, _ctx(args)) == line


def test_error_line_without_a_command_keeps_the_field():
    assert error_line("tau", "Input should be less than or equal to 1") == "tau: Input should be less than or equal to 1"


class _Spec(BaseModel):
    folds: int = Field(3, le=50)
    n: int = 1

    @model_validator(mode="after")
    def _check(self):
        if self.n > self.folds:
            raise ValueError("folds: fewer folds than n")
        return self


class _Job(BaseModel):
    stability: _Spec


def test_validation_field_names_nested_and_cross_field_errors():
    with pytest.raises(ValidationError) as e:
        _Job(stability={"folds": 100})
    assert validation_field(e.value) == ("stability.folds", "Input should be less than or equal to 50")
    with pytest.raises(ValidationError) as e:
        _Spec(folds=2, n=3)
    assert validation_field(e.value) == ("folds", "fewer folds than n")
    with pytest.raises(ValidationError) as e:
        _Job(stability={"folds": "x", "n": "y"})
    assert validation_field(e.value) == ("stability.folds", "Input should be a valid integer, unable to parse string "
                                                           "as an integer (and 1 more)")


def test_as_field_puts_a_spec_built_alone_under_its_job_field():
    with pytest.raises(InvalidInput) as e, as_field("stability"):
        _Spec(folds=100)
    assert (e.value.field, e.value.message) == ("stability.folds", "Input should be less than or equal to 50")
    with pytest.raises(InvalidInput) as e, as_field("generator"):
        raise ValueError("not BACKEND[:MODEL]")
    assert (e.value.field, e.value.message) == ("generator", "not BACKEND[:MODEL]")
    with pytest.raises(InvalidInput) as e, as_field("generator"):
        raise InvalidInput("concept", "kept")
    assert e.value.field == "concept"


def test_user_errors_one_line_exit_2_with_the_flag():
    @click.command()
    @click.option("--top-percent", type=float, default=1.0)
    @user_errors(fields=FIELDS)
    def job(top_percent):
        _Job(stability={"folds": 100}) if top_percent > 1 else None
        raise InvalidInput("top_k_percent", "Input should be greater than 0")

    r = CliRunner().invoke(job, ["--top-percent", "0"])
    assert r.exit_code == 2 and r.stderr == "neuroscribe: error: --top-percent: 0 is not accepted: Input should be " \
                                           "greater than 0\n"
    r = CliRunner().invoke(job, ["--top-percent", "2"])  # a field without an option here
    assert r.exit_code == 2 and r.stderr == "neuroscribe: error: stability.folds: Input should be less than or " \
                                           "equal to 50\n"

    @click.command()
    @user_errors
    def plain():
        raise InvalidInput("DIR", "'x' is not a folder")

    r = CliRunner().invoke(plain, [])
    assert r.exit_code == 2 and r.stderr == "neuroscribe: error: DIR: 'x' is not a folder\n"
