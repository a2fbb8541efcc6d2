"""Exports: where they go, file names that never overwrite, CSV with the union of the columns."""

from __future__ import annotations

import csv
import json

from lwtui.core.export import export_dir, export_path, write_records


def test_export_dir_is_created_under_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "a" / "b"))
    assert export_dir() == tmp_path / "a" / "b" / "lwtui" and (tmp_path / "a" / "b" / "lwtui").is_dir()


def test_export_dir_falls_back_to_the_current_directory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))      # a file: no directory can be made under it
    monkeypatch.chdir(tmp_path)
    assert export_dir() == tmp_path


def test_export_paths_never_overwrite(tmp_path):
    first = export_path(tmp_path, "flows", "csv", when=0)
    first.write_text("")
    second = export_path(tmp_path, "flows", "csv", when=0)
    assert first.name.startswith("lwtui-flows-") and second.name.endswith("-2.csv") and not second.exists()


def test_csv_has_every_column_and_json_keeps_values(tmp_path):
    records = [{"type": "flow", "proto": "tcp", "sport": 1}, {"type": "flow", "proto": "icmp", "icmp_type": 8}]
    assert write_records(tmp_path / "x.csv", records, "csv") == 2
    rows = list(csv.DictReader((tmp_path / "x.csv").open()))
    assert rows == [{"proto": "tcp", "sport": "1", "icmp_type": ""}, {"proto": "icmp", "sport": "", "icmp_type": "8"}]
    write_records(tmp_path / "x.json", records, "json")
    assert json.loads((tmp_path / "x.json").read_text()) == [{"proto": "tcp", "sport": 1},
                                                             {"proto": "icmp", "icmp_type": 8}]
