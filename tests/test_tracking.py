"""MLflow store handling that needs no sweep: a new SQLite store starts from an empty-store template; store
URIs resolve, and lock, where their store is."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def _tables(path):
    with sqlite3.connect(str(path)) as con:
        return sorted(r[0] for r in con.execute("select name from sqlite_master where type='table'"))


def test_a_new_store_is_a_copy_of_an_empty_store_and_equals_a_migrated_one(tmp_path, monkeypatch):
    from sweep import tracking
    from sweep.tracking import Tracker

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = {"experiment": "atmburst", "artifacts": str(tmp_path / "art")}
    first = Tracker({**settings, "uri": f"sqlite:///{tmp_path}/a.db"}, tmp_path)  # migrated, kept as template
    template = tracking._store_template()
    assert template.is_file() and str(tmp_path / "xdg") in str(template)
    assert [e.name for e in first.client.search_experiments()] == ["atmburst", "Default"]  # template had none

    copied = []
    real = tracking.shutil.copyfile
    monkeypatch.setattr(tracking.shutil, "copyfile", lambda a, b: copied.append(a) or real(a, b))
    second = Tracker({**settings, "uri": f"sqlite:///{tmp_path}/b.db"}, tmp_path)
    assert copied == [template]
    assert _tables(tmp_path / "a.db") == _tables(tmp_path / "b.db")
    assert second.experiment_id == first.experiment_id
    run = second.client.create_run(second.experiment_id)
    second.client.log_metric(run.info.run_id, "m", 1.0)
    assert second.client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_store_uris_resolve_and_lock_where_their_store_is(tmp_path):
    from sweep.tracking import _lock_path, resolve_uri

    store = tmp_path / "mlruns"
    for uri in (f"file:{store}", f"file://{store}", f"file://{store}/"):
        # a file URI stays a URI (once it became a folder named "file:" under the base folder) and its lock
        # file lies beside its store
        assert resolve_uri(uri, Path("/elsewhere")) == uri
        assert _lock_path(uri) == tmp_path / "mlruns.lock"
    assert resolve_uri("runs/mlruns", tmp_path) == str(tmp_path / "runs/mlruns")
    assert _lock_path(str(store)) == tmp_path / "mlruns.lock"
    assert resolve_uri("sqlite:///ml.db", tmp_path) == f"sqlite:///{tmp_path / 'ml.db'}"
    assert _lock_path(f"sqlite:///{tmp_path / 'ml.db'}") == tmp_path / "ml.db.lock"
    assert resolve_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert _lock_path("http://127.0.0.1:5000") is None
