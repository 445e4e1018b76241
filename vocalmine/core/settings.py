"""One typed settings object for every stage.

Values come, in increasing priority, from the defaults below, a TOML or YAML file named by
``VOCALMINE_CONFIG`` (or passed to :func:`get_settings`), ``VOCALMINE_*`` environment variables,
and explicit overrides (the CLI's options). pydantic-settings does the merging and validation.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML or YAML settings file; a ``[vocalmine]`` table is used when present."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{file}: cannot read config file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{file}: invalid config file ({exc})".replace("\n", " ")) from exc
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{file}: config file must hold a table of settings")
    return data.get("vocalmine", data)


def get_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, config file, environment, then explicit non-None overrides."""
    path = config_file or os.environ.get("VOCALMINE_CONFIG")
    file_values = load_config_file(path) if path else {}
    env_settings = Settings()
    env_set = {
        name
        for name in Settings.model_fields
        if f"VOCALMINE_{name.upper()}" in {k.upper() for k in os.environ}
    }
    merged = {k: v for k, v in file_values.items()}
    merged.update({k: getattr(env_settings, k) for k in env_set})
    merged.update({k: v for k, v in overrides.items() if v is not None})
    # Derived defaults must be recomputed from the final data_dir, not the environment's.
    for derived in ("catalog_url", "shard_root", "model_root"):
        if derived not in merged:
            merged[derived] = ""
    return Settings.model_validate(merged)
