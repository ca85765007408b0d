"""The command line refuses bad flags by name, never with a traceback, and prints no secret."""

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
