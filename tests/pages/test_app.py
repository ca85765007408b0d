from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_default_spec_is_valid():
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.success[0].value.startswith("Valid spec")


def test_bad_spec_names_the_field():
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_area[0].input('{"data": {"source": {"kind": "digits"}}, "train": {"epochs": 0}}').run()
    assert not at.exception
    assert "train.epochs" in at.error[0].value
