"""What really runs is what the session says: a schedule run at a fraction of its steps
(--scale, or the digits demo's 5 % of the paper's) is named so in its config and in
`sessions show`."""

from __future__ import annotations

import json

from cli_runs import MB_ARGS, in_process


def test_a_scaled_schedule_is_named_with_its_scale_in_the_config_and_in_show(mb_session):
    scale = MB_ARGS[MB_ARGS.index("--scale") + 1]
    config = json.loads((mb_session / "config.json").read_text())
    assert config["schedule"]["name"] == f"surface x{float(scale):g}"
    shown = in_process("sessions", "show", mb_session.name, home=mb_session.parent)
    assert shown.returncode == 0, shown.stderr
    assert f"schedule   surface x{float(scale):g}" in shown.stdout.splitlines()
    facts = json.loads(in_process("sessions", "show", mb_session.name, "--json", home=mb_session.parent).stdout)
    assert facts["schedule"] == f"surface x{float(scale):g}"
