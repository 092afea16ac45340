# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""`snapflow bench sim --resume`: which cases of an earlier run are kept."""

import json

from snapflow_ros.cli.bench import previous_cases
from snapflow_ros.config_fields import config_to_dict
from snapflow_ros.nodes.harness.closed_loop import ClosedLoopConfig

DEFAULTS = config_to_dict(ClosedLoopConfig())
CASES = {"teacher@10": {"case": {"name": "teacher@10"}, "episodes": []}}


def _write(path, config):
    path.write_text(json.dumps({"config": config, "cases": CASES}))
    return path


def test_a_run_from_before_a_setting_is_kept_while_the_setting_is_at_its_default(tmp_path,
                                                                                  capsys):
    config = config_to_dict(ClosedLoopConfig(episodes=3))
    older = {key: value for key, value in config.items() if key != "blend_steps"}
    path = _write(tmp_path / "closed_loop.json", older)
    assert previous_cases(path, config, DEFAULTS) == CASES
    # The same run resumed with the new setting changed starts over, and says which setting.
    changed = config_to_dict(ClosedLoopConfig(episodes=3, blend_steps=7))
    assert previous_cases(path, changed, DEFAULTS) == {}
    assert "blend_steps differ" in capsys.readouterr().err
    # Without defaults, a setting the run did not record counts as different.
    assert previous_cases(path, config) == {}


def test_other_settings_missing_or_unreadable_files_start_over(tmp_path, capsys):
    config = config_to_dict(ClosedLoopConfig(episodes=3))
    path = _write(tmp_path / "closed_loop.json", config)
    assert previous_cases(path, config, DEFAULTS) == CASES
    other = config_to_dict(ClosedLoopConfig(episodes=4, seed_start=7))
    assert previous_cases(path, other, DEFAULTS) == {}
    assert "episodes, seed_start differ" in capsys.readouterr().err
    assert previous_cases(tmp_path / "missing.json", config, DEFAULTS) == {}
    (tmp_path / "torn.json").write_text('{"config": {')
    assert previous_cases(tmp_path / "torn.json", config, DEFAULTS) == {}
    assert previous_cases(None, config, DEFAULTS) == {}
