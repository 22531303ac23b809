"""Broker credentials never on the command line: ``--broker`` with a password is refused before
anything connects; the same URL from the environment is used."""

from __future__ import annotations

from click.testing import CliRunner

from sustainml.cli.main import cli


def test_a_password_in_broker_option_is_refused_naming_the_environment_variable() -> None:
    result = CliRunner().invoke(cli, ["--broker", "amqp://admin:s3cret@127.0.0.1:1/", "status"])
    assert result.exit_code == 1
    assert "--broker: a password on the command line" in result.output
    assert "SUSTAINML_BROKER_URL" in result.output and "s3cret" not in result.output
    # a cluster URL is checked node by node
    result = CliRunner().invoke(cli, ["--broker", "amqp://h1:5672/,amqp://u:p@h2:5672/", "status"])
    assert result.exit_code == 1 and "--broker: a password" in result.output


def test_the_same_url_from_the_environment_is_accepted() -> None:
    # port 1 refuses at once: the command gets as far as connecting, with the password from the env
    result = CliRunner().invoke(
        cli, ["status"], env={"SUSTAINML_BROKER_URL": "amqp://admin:s3cret@127.0.0.1:1/"}
    )
    assert result.exit_code == 1 and "connection refused" in result.output
    assert "--broker: a password" not in result.output and "s3cret" not in result.output


def test_the_public_development_account_may_stay_on_the_command_line() -> None:
    result = CliRunner().invoke(cli, ["--broker", "amqp://guest:guest@127.0.0.1:1/", "status"])
    assert "--broker: a password" not in result.output and "connection refused" in result.output
