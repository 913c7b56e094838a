"""`tradeloop infer` and `tradeloop control` register and describe themselves (no broker needed)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from streams.settings import Settings
from tradeloop.commands import infer


def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def settings(ctx: typer.Context) -> None:
        ctx.obj = Settings()

    infer.register(root)
    return root


def test_commands_are_registered_with_help() -> None:
    runner = CliRunner()
    result = runner.invoke(app(), ["--help"])
    assert result.exit_code == 0 and "infer" in result.output and "control" in result.output
    control = runner.invoke(app(), ["control", "--help"])
    for command in ("freeze", "unfreeze", "kill", "release", "versions"):
        assert command in control.output
    assert "--worker-id" in runner.invoke(app(), ["infer", "--help"]).output
