"""Settings: read once from the environment; invalid values stop startup with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.errors import SettingsError
from workflow.settings import MAX_TIMEOUT_SECONDS, TIMEOUT_ENV, Settings

APP_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("environ", [{}, {TIMEOUT_ENV: ""}, {TIMEOUT_ENV: "  "}, {TIMEOUT_ENV: "0"}])
def test_unset_empty_or_zero_timeout_means_wait_forever(environ: dict[str, str]) -> None:
    assert Settings.from_env(environ).timeout_seconds is None


@pytest.mark.parametrize(("raw", "seconds"), [("1", 1), ("3600", 3600), (" 60 ", 60), ("864000", 864000)])
def test_positive_timeout_is_read_in_seconds(raw: str, seconds: int) -> None:
    assert Settings.from_env({TIMEOUT_ENV: raw}).timeout_seconds == seconds


@pytest.mark.parametrize("raw", ["-1", "1.5", "1e3", "ten", "+5", "0x10", "٣"])
def test_invalid_timeout_is_a_startup_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{TIMEOUT_ENV} must be a whole number of seconds"):
        Settings.from_env({TIMEOUT_ENV: raw})


def test_timeout_above_the_maximum_is_rejected() -> None:
    with pytest.raises(SettingsError, match=str(MAX_TIMEOUT_SECONDS)):
        Settings.from_env({TIMEOUT_ENV: str(MAX_TIMEOUT_SECONDS + 1)})


def test_settings_object_rejects_invalid_values_built_directly() -> None:
    assert Settings(timeout_seconds=0).timeout_seconds is None  # 0 = wait forever, as in the env
    with pytest.raises(SettingsError):
        Settings(timeout_seconds=-1)
    with pytest.raises(SettingsError):
        Settings(timeout_seconds=MAX_TIMEOUT_SECONDS + 1)
    with pytest.raises(SettingsError):
        Settings(timeout_seconds=True)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = Settings(timeout_seconds=5)
    with pytest.raises(AttributeError):
        settings.timeout_seconds = 6  # type: ignore[misc]


def test_app_refuses_to_load_with_an_invalid_timeout() -> None:
    env = {**os.environ, TIMEOUT_ENV: "-5"}
    result = subprocess.run(
        [sys.executable, "-c", "import function_app"],
        cwd=APP_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SettingsError" in result.stderr
    assert f"{TIMEOUT_ENV} must be a whole number of seconds" in result.stderr


def test_the_timeout_rule_includes_both_bounds_and_names_the_value() -> None:
    from workflow.settings import check_timeout
    assert check_timeout(MAX_TIMEOUT_SECONDS) == MAX_TIMEOUT_SECONDS
    assert check_timeout(0) is None and check_timeout(1) == 1
    with pytest.raises(SettingsError, match=r"^timeout_seconds must be a whole number"):
        check_timeout(-1)
    with pytest.raises(SettingsError, match=r"^timeoutSeconds must be"):
        check_timeout(1.5, "timeoutSeconds")


def test_stop_confirm_window_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="stop_confirm_seconds must be positive, got 0"):
        Settings(stop_confirm_seconds=0)


def test_settings_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "7")
    assert Settings.from_env().timeout_seconds == 7
