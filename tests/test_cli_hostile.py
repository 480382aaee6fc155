"""The command line as a hostile user tries it.

Every option of every command, found by walking the click tree (so that an option is covered
the day it is added), must be typed and bounded, and refuse what lies outside: 0 or -1 where
it wants 1 or more, a huge number, NaN, infinity, an empty string, a word. A refusal is a
usage error (exit status 2) naming the option, never a traceback, and it leaves the project
byte for byte as it was. Then particular hostile inputs, each with its own test.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import click
import numpy as np
import pytest

from specscout.archive.project import Project
from specscout.cli import cli, main
from specscout.cli.common import Device, Finite, Named

from conftest import scored_iteration

TEXT = click.types.StringParamType | click.Path | click.File


def commands(group=cli, words=()):
    """(words, command) of every command of the tree."""
    for name, sub in sorted(group.commands.items()):
        if isinstance(sub, click.Group):
            yield from commands(sub, (*words, name))
        else:
            yield (*words, name), sub


def options():
    """(words, command, option) of every option that takes a value."""
    for words, cmd in commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag and not p.count:
                yield words, cmd, p


def hostile(t) -> list[str]:
    """Values that the option's type must refuse."""
    if isinstance(t, click.IntRange):
        return [str(t.min - 1), str(t.max + 1), "99999999999999999999", "nan", "", "x",
                "1.5"]
    if isinstance(t, Finite):
        return [str(t.min - 1), str(t.max * 10 + 1), "nan", "inf", "-inf", "", "x"]
    if isinstance(t, click.Choice | Named):
        return ["bogus", ""]
    if isinstance(t, Device):
        return ["tpu", "cuda:99", ""]
    return []


def tree_state(path: Path) -> dict[str, str]:
    """Every file under ``path`` with a hash of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    p = Project.init(tmp_path_factory.mktemp("hostile") / "p")
    flux = np.random.default_rng(0).normal(size=(4, 140)).astype(np.float32)
    p.store().commit(flux, [{"path": f"f{i}.fits", "id": f"spec-{i}", "obsid": 10 + i,
                             "ra": 10.0 + i, "dec": 5.0, "designation": f"J{i}", "snr": 20.0,
                             "status": "ok", "flags": 0, "reason": "", "detail": ""}
                            for i in range(4)])
    scored_iteration(p, 1, np.tile([0.3, 0.6, 0.1], (4, 1)))
    return p


def test_every_option_that_takes_a_number_is_bounded_at_both_ends():
    loose = []
    for words, _, p in options():
        t = p.type
        if isinstance(t, TEXT | click.Choice | Named | Device):
            continue
        bounded = isinstance(t, click.IntRange | Finite) and t.min is not None and \
            t.max is not None
        if not bounded:
            loose.append(f"{' '.join(words)} {p.opts[0]} ({t!r})")
    assert not loose, loose


def test_every_option_has_help_or_says_itself():
    """An option's help text, or a default shown: what a user sees in --help."""
    silent = [f"{' '.join(words)} {p.opts[0]}" for words, _, p in options()
              if not p.help and not p.show_default and p.name not in ("iteration",)]
    assert not silent, silent


CASES = [(words, p, value) for words, _, p in options() for value in hostile(p.type)]


def test_the_matrix_is_large():
    assert len(CASES) > 400


@pytest.mark.parametrize(("words", "option", "value"), CASES,
                         ids=[f"{' '.join(w)} {p.opts[0]}={v!r}" for w, p, v in CASES])
def test_every_hostile_value_is_a_usage_error_that_changes_nothing(
        words, option, value, project, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = tree_state(project.path)
    needs_project = any(isinstance(p, click.Argument) and p.name == "project"
                        for p in dict(commands())[words].params)
    args = [*words, *([str(project.path)] if needs_project else []), option.opts[0], value]
    if option.nargs == 2:
        args.append("6600")
    signal.alarm(30)  # no hang: a refusal is at once
    try:
        status = main(args)
    finally:
        signal.alarm(0)
    out = capsys.readouterr()
    text = out.out + out.err
    assert status == 2, text
    assert "Traceback" not in text and "Invalid value" in text, text
    assert any(o in text for o in option.opts), text
    assert tree_state(project.path) == before
    assert not os.listdir(tmp_path)  # nothing written where the command ran


# --- particular hostile inputs --------------------------------------------------------------


def test_two_commands_that_write_iterations_at_once_the_second_is_refused(project, capsys):
    before = tree_state(project.path / "iterations")
    with project.lock("train"):
        assert main(["query", str(project.path), "--batch", "2"]) == 2
    err = capsys.readouterr().err
    assert "is busy: 'specscout train' (process" in err and "Traceback" not in err
    assert tree_state(project.path / "iterations") == before
    assert main(["query", str(project.path), "--batch", "1", "--quiet"]) == 0  # released


def test_a_query_says_why_it_queues_fewer_than_asked(project, capsys):
    assert main(["query", str(project.path), "--iteration", "1", "--batch", "100"]) == 0
    out = capsys.readouterr().out
    assert "queued 4 of the 100 asked: all the others are labelled, or queued" in out
    scored_iteration(project, 2, np.tile([0.3, 0.6, 0.1], (4, 1)))  # a new iteration
    assert main(["query", str(project.path), "--batch", "5"]) == 0
    assert "queued 0 of the 5 asked: every spectrum of the pool is" in capsys.readouterr().out


def test_quiet_means_quiet(project, tmp_path, capsys):
    """--quiet: nothing on standard output; without it, the result."""
    import shutil

    copy = shutil.copytree(project.path, tmp_path / "p")
    assert main(["score", str(copy), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["score", str(copy)]) == 0
    assert capsys.readouterr().out.startswith("scored ")


def test_simulate_refuses_a_folder_that_holds_files(tmp_path, capsys):
    out = tmp_path / "survey"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["simulate", str(out), "--n", "5", "--quiet"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["simulate", str(out), "--n", "5", "--quiet", "--overwrite",
                 "--workers", "1"]) == 0
    assert main(["simulate", str(out), "--n", "3", "--quiet", "--overwrite",
                 "--workers", "1"]) == 0  # a smaller one leaves none of the first's files
    assert len(list(out.rglob("*.fits*"))) == 3 and (out / "notes.txt").read_text() == "mine"


def test_ingest_of_what_names_nothing_is_an_error_that_stores_nothing(project, tmp_path,
                                                                     capsys):
    before = tree_state(project.path)
    (tmp_path / "empty").mkdir()
    for source in (tmp_path / "typo.fits", tmp_path / "*.fits", tmp_path / "empty"):
        assert main(["ingest", str(project.path), str(source), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert str(source) in err and "Traceback" not in err
    assert tree_state(project.path) == before


def test_a_misspelt_config_key_is_named_with_the_nearest(tmp_path, capsys):
    p = Project.init(tmp_path / "p")
    config = p.path / "specscout.toml"
    config.write_text(config.read_text().replace("negatives =", "negatvies ="))
    assert main(["info", str(p.path)]) == 2
    assert "unknown key train.negatvies: did you mean negatives?" in capsys.readouterr().err


def test_an_experiment_with_a_bad_truth_table_leaves_no_folder(project, tmp_path, capsys):
    (tmp_path / "truth.csv").write_text("name,kind\nx,y\n")
    out = tmp_path / "exp"
    assert main(["experiment", str(project.path), "--truth", str(tmp_path / "truth.csv"),
                 "--out", str(out)]) == 2
    assert "not a truth table" in capsys.readouterr().err and not out.exists()


def test_the_unexpected_is_one_line_and_a_log(project, monkeypatch, capsys):
    import specscout.learn.iterations as iterations

    def broken(*_, **__):
        raise RuntimeError("something no one foresaw\nwith a second line")

    monkeypatch.setattr(iterations, "status", broken)
    assert main(["status", str(project.path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected RuntimeError: something no one foresaw" in err
    log = project.path / "logs" / "errors.log"
    assert str(log) in err and "Traceback" in log.read_text()
    assert "with a second line" in log.read_text()
    monkeypatch.setenv("SPECSCOUT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["status", str(project.path)])


def test_a_taken_dashboard_port_says_nothing(recwarn):
    """Dask moves its dashboard when 8787 is taken (by another cluster, a notebook) and warns
    of it; that reaches a user of --quiet for nothing, so it is not shown."""
    import socket

    from specscout.archive.cluster import dask_client

    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
        except OSError:
            pytest.skip("port 8787 is in use here already")
        taken.listen()
        with dask_client(workers=1) as client:
            assert client.submit(sum, [1, 2]).result() == 3
    assert not [w for w in recwarn if "already in use" in str(w.message)]
