"""The folder a session's factory is imported from is vouched for with the factory: a
config.json whose folder was changed names other code, and is refused."""

from __future__ import annotations

from sessions.problem import trust


def test_a_vouch_holds_for_the_folder_its_factory_is_imported_from_only(tmp_path):
    given = trust.tag(tmp_path, "s1", "mymodels:make", {"hidden": 8}, import_dir="/home/me/work")

    assert trust.vouched(tmp_path, "s1", "mymodels:make", {"hidden": 8}, given, import_dir="/home/me/work")
    assert not trust.vouched(tmp_path, "s1", "mymodels:make", {"hidden": 8}, given, import_dir="/tmp/planted")
    assert not trust.vouched(tmp_path, "s1", "mymodels:make", {"hidden": 8}, given)
