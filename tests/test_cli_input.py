"""The command line refuses bad flags by name, never with a traceback, and prints no secret."""

import re
import pytest

from backend.cli import main


@pytest.mark.parametrize("value, reason", [
    ("100000000000000000000", "priority must be a whole number from -1,000,000 to 1,000,000"),
    ("-1000001", "from -1,000,000 to 1,000,000"),
    ("high", "priority must be a whole number, got 'high'"),
])
def test_submit_refuses_a_priority_out_of_range_naming_the_flag(tmp_path, monkeypatch, capsys, value, reason):
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(SystemExit) as exit_:
        main(["submit", "--preset", "yosinski-digits", "--quick", "--priority", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --priority" in err and reason in err and "Traceback" not in err
    assert not (tmp_path / "store.db").exists()  # nothing queued, no store opened


def test_submit_names_the_store_with_its_password_masked(tmp_path, monkeypatch, capsys):
    import db.queue
    from db.session import get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'store.db'}")  # where the jobs really go
    monkeypatch.setattr(db.queue, "get_engine", lambda url=None: engine)
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", "postgresql+psycopg://lab:s3cret-pw@db.example:5432/lab")
    assert main(["submit", "--preset", "yosinski-digits", "--quick", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "jobs queued in postgresql+psycopg://lab:***@db.example:5432/lab" in out
    assert "s3cret-pw" not in out


def test_the_help_keeps_its_examples_one_a_line_and_names_what_spec_takes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "\n    python -m backend presets " in out and "\n    python -m backend submit --preset" in out
    for command in ("sweep", "submit"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "TrainJobSpec" not in out and "--spec FILE a JSON or YAML study spec to start from" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "TrainJobSpec" in capsys.readouterr().out


def test_local_settings_and_secrets_stay_out_of_git_and_the_image():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    secrets = ["lab.env", "transferlab.toml", ".streamlit/secrets.toml"]  # the README keeps passwords in these
    done = subprocess.run(["git", "check-ignore", "--no-index", *secrets, "var/x", ".venv/x"], cwd=root,
                          capture_output=True, text=True)
    assert done.stdout.split() == [*secrets, "var/x", ".venv/x"], done.stdout + done.stderr
    docker = {line.strip().rstrip("/") for line in (root / ".dockerignore").read_text().splitlines()}
    assert {*secrets, "var", ".venv"} <= docker  # the Dockerfile copies the project folder (COPY . .)


def test_submit_says_what_sharpness_adds_and_how_to_bring_it_down(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    spec = tmp_path / "own.yaml"  # probes.sharpness unset: the estimator's full defaults, not the preset rule's
    spec.write_text("study: yosinski\ndata: {source: {kind: digits}}\nseeds: [0]\n")
    assert main(["submit", "--spec", str(spec)]) == 0
    over = capsys.readouterr().err
    assert re.search(r"sharpness adds about \d+\.\dx the training's time, over the 3x budget", over)
    assert "probes.sharpness null (off)" in over
    assert main(["submit", "--preset", "yosinski-digits", "--quick"]) == 0  # the rule keeps a preset within it
    within = capsys.readouterr().err
    ratio = float(re.search(r"sharpness adds about ([\d.]+)x", within).group(1))
    assert ratio <= 3 and "budget" not in within
    assert main(["submit", "--spec", str(spec), "--set", "probes.sharpness=null"]) == 0
    assert "sharpness" not in capsys.readouterr().err  # off: nothing to say
