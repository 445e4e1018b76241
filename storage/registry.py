"""Model registry: versioned weights on disk (or any fsspec URL) plus one catalog row each.

Layout: ``<model_root>/<name>/v<version>/model.pt`` (a plain torch ``state_dict``) and
``card.json`` beside it (how to rebuild the model, its training config, the shard manifest it
trained on, its validation scores, the weights' SHA-256). The catalog's ``ModelRecord`` row
holds the same facts for queries; ``is_current`` marks the promoted version.
``load(name)`` without a version gives the current version, else the latest.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, datetime
from typing import Any

import fsspec
import torch
from sqlalchemy import func, select, update
from vocalmine.storage.catalog import Catalog, ModelRecord
from vocalmine.storage.shards import atomic_write, open_filesystem
from vocalmine.training.models import SeparationModel, model_from_spec

log = logging.getLogger(__name__)

WEIGHTS = "model.pt"
CARD = "card.json"


class RegistryError(LookupError):
    """A model or version that does not exist, or damaged weights; one-line message."""


def record_to_dict(record: ModelRecord) -> dict[str, Any]:
    """A catalog row as plain values."""
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "path": record.path,
        "kind": record.kind,
        "preset": record.preset,
        "config": record.config,
        "manifest": record.manifest,
        "metrics": record.metrics,
        "is_current": record.is_current,
        "created_at": record.created_at.isoformat() if record.created_at else None,
    }


class ModelRegistry:
    """Register, list, promote and load separation models."""

    def __init__(self, root: str, catalog: Catalog) -> None:
        self.root = str(root)
        self.catalog = catalog
        self.fs, self.base = open_filesystem(root)

    def register(
        self,
        model: SeparationModel,
        *,
        name: str,
        config: dict[str, Any],
        manifest: dict[str, Any] | None,
        metrics: dict[str, Any],
    ) -> int:
        """Store ``model``'s weights and card as the next version of ``name``; return it."""
        if not name or "/" in name or name.startswith("."):
            raise RegistryError(f"invalid model name {name!r}")
        buffer = io.BytesIO()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, buffer)
        weights = buffer.getvalue()
        with self.catalog.session() as session:
            latest = session.scalar(
                select(func.max(ModelRecord.version)).where(ModelRecord.name == name)
            )
            version = (latest or 0) + 1
            folder = f"{self.base}/{name}/v{version}"
            card = {
                "name": name,
                "version": version,
                "model": model.spec(),
                "parameters": model.parameter_count(),
                "weights": WEIGHTS,
                "weights_sha256": hashlib.sha256(weights).hexdigest(),
                "config": config,
                "manifest": manifest,
                "metrics": metrics,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self.fs.makedirs(folder, exist_ok=True)
            atomic_write(self.fs, f"{folder}/{WEIGHTS}", weights)
            atomic_write(self.fs, f"{folder}/{CARD}", json.dumps(card, indent=1).encode())
            session.add(
                ModelRecord(
                    name=name,
                    version=version,
                    path=self._url(folder),
                    kind=model.kind,
                    preset=model.preset.name,
                    config={**config, "model": model.spec()},
                    manifest=manifest,
                    metrics=metrics,
                    is_current=False,
                )
            )
        log.info("registered %s v%d at %s", name, version, folder)
        return version

    def _url(self, path: str) -> str:
        protocol = self.root.split("://", 1)[0] if "://" in self.root else None
        return f"{protocol}://{path}" if protocol and protocol != "file" else path

    def _record(self, name: str, version: int | None) -> dict[str, Any]:
        with self.catalog.session() as session:
            query = select(ModelRecord).where(ModelRecord.name == name)
            if version is not None:
                record = session.scalar(query.where(ModelRecord.version == version))
            else:
                record = session.scalar(
                    query.order_by(ModelRecord.is_current.desc(), ModelRecord.version.desc())
                )
            if record is None:
                which = f"version {version} of " if version is not None else ""
                raise RegistryError(f"{self.root}: no {which}model named {name!r} is registered")
            return record_to_dict(record)

    def load(
        self, name: str, version: int | None = None, *, device: str | torch.device = "cpu"
    ) -> tuple[SeparationModel, dict[str, Any]]:
        """The model (in eval mode) and its record; ``version=None`` = current, else latest."""
        record = self._record(name, version)
        folder = record["path"]
        fs = fsspec.core.url_to_fs(folder)[0] if "://" in folder else self.fs
        try:
            with fs.open(f"{folder}/{CARD}", "rb") as handle:
                card = json.loads(handle.read())
            with fs.open(f"{folder}/{card['weights']}", "rb") as handle:
                weights = handle.read()
        except FileNotFoundError as exc:
            raise RegistryError(f"{folder}: model files missing ({exc})") from exc
        if hashlib.sha256(weights).hexdigest() != card["weights_sha256"]:
            raise RegistryError(f"{folder}/{card['weights']}: checksum mismatch")
        model = model_from_spec(card["model"])
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.to(device).eval()
        record["card"] = card
        return model, record

    def promote(self, name: str, version: int) -> None:
        """Make ``version`` the current model of ``name`` (and no other version)."""
        self._record(name, version)
        with self.catalog.session() as session:
            session.execute(
                update(ModelRecord)
                .where(ModelRecord.name == name)
                .values(is_current=ModelRecord.version == version)
            )
        log.info("promoted %s v%d", name, version)

    def current(self, name: str) -> dict[str, Any] | None:
        """The promoted version's record, or None."""
        with self.catalog.session() as session:
            record = session.scalar(
                select(ModelRecord).where(ModelRecord.name == name, ModelRecord.is_current)
            )
            return record_to_dict(record) if record else None

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """Records of every version (of ``name``), by name then version."""
        with self.catalog.session() as session:
            query = select(ModelRecord).order_by(ModelRecord.name, ModelRecord.version)
            if name is not None:
                query = query.where(ModelRecord.name == name)
            return [record_to_dict(r) for r in session.scalars(query)]
