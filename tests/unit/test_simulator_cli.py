"""``creatorpulse simulate``: its options and the background process it manages."""

from __future__ import annotations

import pytest

from creatorpulse.cli import build_parser, main
from creatorpulse.settings import Settings
from creatorpulse.sources.simulator.cli import config_from_args


def test_options_become_the_simulation_config() -> None:
    args = build_parser().parse_args(["simulate", "--accounts", "25", "--seed", "9",
                                      "--x-limit", "3", "--token-ttl", "60"])
    settings = Settings.from_env({"CREATORPULSE_X_CLIENT_SECRET": "xs",
                                  "CREATORPULSE_WEBHOOKS_URL": "http://127.0.0.1:9999"}, None)
    config = config_from_args(args, settings)
    assert (config.accounts, config.seed, config.x_limit) == (25, 9, 3)
    assert set(config.token_ttl.values()) == {60.0}
    assert config.client("x").secret == "xs"
    assert config.webhooks_url == "http://127.0.0.1:9999"
    assert "xs" not in repr(config)


@pytest.mark.parametrize("argv", [["--accounts", "0"], ["--speed", "-1"],
                                  ["--platforms", "myspace"], ["--origin", "yesterday"],
                                  ["--webhook-every", "-1"]])
def test_bad_options_are_refused(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", *argv])
    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err


def test_help_explains_the_admin_surface(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert "/_sim/accounts" in out and "--accounts" in out and "--speed" in out
