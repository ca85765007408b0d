"""One engine per URL per process, the default URL read from the settings at each call."""

from db.session import get_engine


def test_the_default_engine_follows_the_database_setting(tmp_path, monkeypatch):
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", first)
    engine = get_engine()
    assert str(engine.url) == first and get_engine(first) is engine
    monkeypatch.setenv("TRANSFERLAB_DATABASE_URL", second)  # a changed setting is followed, not the first one kept
    assert str(get_engine().url) == second and get_engine() is get_engine(second)
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()  # each created and migrated
