"""One typed settings object for every stage.

Values come, in increasing priority, from the defaults below, a TOML, YAML or JSON file named by
``VOCALMINE_CONFIG`` (or passed to :func:`get_settings`), ``VOCALMINE_*`` environment variables,
and explicit overrides (the CLI's options). pydantic-settings does the merging and validation.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vocalmine.core.errors import OneLineError
from vocalmine.core.stft import get_preset


class Settings(BaseSettings):
    """Where things live, which backends to use, and the mining policy."""

    model_config = SettingsConfigDict(env_prefix="VOCALMINE_", extra="forbid")

    library_root: Path | None = Field(None, description="music library to mine")
    data_dir: Path = Field(Path("vocalmine-data"), description="catalog, shards, models, logs")
    catalog_url: str = Field(
        "", description="SQLAlchemy URL; default sqlite:///<data_dir>/catalog.db"
    )
    shard_root: str = Field("", description="local path or fsspec URL; default <data_dir>/shards")
    model_root: str = Field("", description="model registry folder; default <data_dir>/models")
    fingerprint_index: str = Field(
        "", description="local path or fsspec URL; default <data_dir>/fingerprint-index"
    )
    dataset: str = Field("default", description="shard dataset name written by `mine`")
    dask_address: str | None = Field(
        None, description="Dask scheduler address; None = LocalCluster"
    )
    dask_workers: int = Field(2, ge=1, description="LocalCluster worker processes")
    stft_preset: str = Field("paper", description="STFT preset name (core.stft.PRESETS)")
    max_duration_diff_s: float = Field(
        5.0, ge=0, description="reject pairs whose lengths differ more"
    )
    max_duration_s: float = Field(300.0, gt=0, description="reject tracks longer than this")
    max_gain_db: float = Field(
        12.0, gt=0, description="reject pairs whose instrumental sits in the mix beyond ±this"
    )
    segment_skip_s: float = Field(20.0, ge=0, description="skip at the start and at the end")
    segment_hop_frames: int | None = Field(None, ge=1, description="None = non-overlapping patches")
    min_segment_quality: float = Field(0.0, ge=0, le=1, description="training drops worse segments")
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    hash_bytes: int = Field(0, ge=0, description="hash only this many bytes per file; 0 = all")
    sweep_postings_per_hash: float = Field(
        4.0, gt=0, description="index postings read per query hash in discovery, rarest first"
    )
    sweep_block_hashes: int = Field(
        1_000_000, ge=1, description="query hashes per discovery task (bounds its memory)"
    )
    mine_schedule: str = Field("0 3 * * *", description="cron of the scheduled mining deployment")
    retrain_schedule: str = Field("0 5 * * 0", description="cron of the scheduled retraining")

    @field_validator("stft_preset")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        return get_preset(name).name

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = Path(self.data_dir).expanduser()
        if not self.catalog_url:
            self.catalog_url = f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"
        if not self.shard_root:
            self.shard_root = str((self.data_dir / "shards").resolve())
        if not self.model_root:
            self.model_root = str((self.data_dir / "models").resolve())
        if not self.fingerprint_index:
            self.fingerprint_index = str((self.data_dir / "fingerprint-index").resolve())
        return self

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain values, with any password in a URL masked."""
        values = self.model_dump(mode="json")
        for key in ("catalog_url",):
            values[key] = _mask_password(values[key])
        return values


def _mask_password(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


class SettingsError(OneLineError, ValueError):
    """A config file, ``VOCALMINE_*`` variable or option that does not make valid settings."""


#: Environment variables with the settings' prefix that are not settings themselves.
ENV_NOT_SETTINGS = {"VOCALMINE_CONFIG"}
_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


def _parse(text: str, kind: str) -> Any:
    if kind == "TOML":
        return tomllib.loads(text)
    if kind == "JSON":
        return json.loads(text)
    return yaml.safe_load(text)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML, YAML or JSON settings file; a ``[vocalmine]`` table is used when present.

    The format follows the suffix (``.toml``, ``.yaml``/``.yml``, ``.json``); with any other
    suffix the content decides (TOML, then JSON, then YAML that holds a table), else a
    :class:`SettingsError` says the format is unknown.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read config file ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise SettingsError(f"{file}: config file is not UTF-8 text") from None
    kind = _FORMATS.get(file.suffix.lower())
    if kind is None:
        for guess in ("TOML", "JSON", "YAML"):
            try:
                data = _parse(text, guess)
            except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError):
                continue
            if isinstance(data, dict) or (data is None and not text.strip()):
                kind = guess
                break
        else:
            raise SettingsError(
                f"{file}: unknown config format (a table of settings in TOML, YAML or JSON, "
                "or a .toml, .yaml, .yml or .json suffix)"
            )
    try:
        data = _parse(text, kind)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{file}: invalid {kind} ({' '.join(str(exc).split())})") from exc
    data = data or {}
    if not isinstance(data, dict):
        raise SettingsError(f"{file}: config file must hold a table of settings")
    return data.get("vocalmine", data)


def unknown_env_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``VOCALMINE_*`` variables that name no setting (a misspelling would be ignored)."""
    names = {f"VOCALMINE_{name.upper()}" for name in Settings.model_fields} | ENV_NOT_SETTINGS
    return sorted(
        key
        for key in (os.environ if environ is None else environ)
        if key.upper().startswith("VOCALMINE_") and key.upper() not in names
    )


def env_warnings() -> list[str]:
    """One line per ``VOCALMINE_*`` variable that is no setting, with the likely one."""
    return [
        f"environment variable {key} is not a setting, ignored{_suggest(key[10:])}"
        for key in unknown_env_variables()
    ]


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key.lower(), list(Settings.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _in_words(exc: ValidationError, origin: dict[str, str]) -> str:
    """pydantic's errors as ``WHERE: KEY: what is wrong (got VALUE)``, joined by ``; ``."""
    lines = []
    for item in exc.errors():
        key = str(item["loc"][0]) if item["loc"] else ""
        where = origin.get(key, "settings")
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown setting {key!r}{_suggest(key)}")
            continue
        message = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        shown = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
        lines.append(f"{where}: {key}: {message[:1].lower()}{message[1:]}{shown}")
    return "; ".join(lines)


def get_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, config file, environment, then explicit non-None overrides.

    Every problem is a :class:`SettingsError` naming where the value came from (the file, the
    variable, the option) and the key: an unknown key, a value of the wrong type.
    ``VOCALMINE_*`` variables that are no setting are the caller's to report
    (:func:`unknown_env_variables`): compose files use a few of their own.
    """
    path = config_file or os.environ.get("VOCALMINE_CONFIG")
    file_values = load_config_file(path) if path else {}
    origin = {key: str(path) for key in file_values}
    env_keys = {k.upper(): k for k in os.environ}
    env_values: dict[str, Any] = {}
    for name in Settings.model_fields:
        variable = env_keys.get(f"VOCALMINE_{name.upper()}")
        if variable is not None:
            env_values[name] = os.environ[variable]
            origin[name] = f"environment variable {variable}"
    if env_values:
        try:
            parsed = Settings.model_validate(env_values)
        except ValidationError as exc:
            raise SettingsError(_in_words(exc, origin)) from None
        env_values = {k: getattr(parsed, k) for k in env_values}
    merged = {**file_values, **env_values}
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
            origin[key] = f"option --{key.replace('_', '-')}"
    # Derived defaults must be recomputed from the final data_dir, not the environment's.
    for derived in ("catalog_url", "shard_root", "model_root", "fingerprint_index"):
        if derived not in merged:
            merged[derived] = ""
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError(_in_words(exc, origin)) from None
