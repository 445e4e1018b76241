"""Model registry: versioned weights on disk (or any fsspec URL) plus one catalog row each.

Layout: ``<model_root>/<name>/v<version>/model.pt`` (a plain torch ``state_dict``) and
``card.json`` beside it (how to rebuild the model, its training config, the shard manifest it
trained on, its validation scores, the weights' SHA-256). The catalog's ``ModelRecord`` row
holds the same facts for queries; ``is_current`` marks the promoted version.
``load_weights(name)`` without a version gives the current version, else the latest.

The registry stores and returns weights and the model's spec only: it never builds a model
(``training.models.model_from_spec`` does, see :mod:`training.registered`), so storage depends
on nothing above it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import fsspec
import torch
from sqlalchemy import delete, func, select, update

from vocalmine.core.atomic import atomic_write
from vocalmine.storage.catalog import Catalog, ModelRecord, TrainingMetric, open_catalog
from vocalmine.storage.shard_schema import open_filesystem

log = logging.getLogger(__name__)

WEIGHTS = "model.pt"
CARD = "card.json"


DEFAULT_MODEL = "vocalmine"
#: The pretrained model ``vocalmine models import`` registers; the default until one is trained.
PRETRAINED_DEFAULT = "spleeter-2stems"


class RegistryError(LookupError):
    """A model or version that does not exist, or damaged weights; one-line message."""


class RegistrableModel(Protocol):
    """What the registry reads of a model: its weights, its spec and its size."""

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...

    def spec(self) -> dict[str, Any]: ...

    def parameter_count(self) -> int: ...


def parse_model_spec(spec: str | None) -> tuple[str, int | None]:
    """``"NAME[:VERSION]"`` → ``(name, version)``; ``None`` means the default model's current."""
    if not spec:
        return DEFAULT_MODEL, None
    name, _, version = spec.partition(":")
    if version and not version.lstrip("v").isdigit():
        raise ValueError(f"--model {spec}: version must be a number, as in NAME:3")
    return name or DEFAULT_MODEL, int(version.lstrip("v")) if version else None


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
        model: RegistrableModel,
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
        spec = model.spec()
        with self.catalog.session() as session:
            latest = session.scalar(
                select(func.max(ModelRecord.version)).where(ModelRecord.name == name)
            )
            version = (latest or 0) + 1
            folder = f"{self.base}/{name}/v{version}"
            card = {
                "name": name,
                "version": version,
                "model": spec,
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
                    kind=spec["kind"],
                    preset=spec["preset"],
                    config={**config, "model": spec},
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

    def load_weights(
        self, name: str, version: int | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The weights (a CPU ``state_dict``) and the record of a version, its card under
        ``record["card"]`` and the spec to rebuild the model under ``record["card"]["model"]``;
        ``version=None`` = current, else latest. Checksums are verified."""
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
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        record["card"] = card
        return state, record

    def resolve(self, spec: str | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """:meth:`load_weights` of ``NAME[:VERSION]`` (:meth:`default_name`'s current for None)."""
        name, version = parse_model_spec(spec)
        return self.load_weights(self.default_name() if spec is None else name, version)

    def find(self, spec: str | None) -> dict[str, Any]:
        """The record ``NAME[:VERSION]`` resolves to (as :meth:`resolve`), without its weights."""
        name, version = parse_model_spec(spec)
        return self._record(self.default_name() if spec is None else name, version)

    def default_name(self) -> str:
        """The model used when none is named: :data:`DEFAULT_MODEL` (what ``vocalmine train``
        registers) once it has a version, else the imported :data:`PRETRAINED_DEFAULT`."""
        with self.catalog.session() as session:
            names = set(
                session.scalars(
                    select(ModelRecord.name).where(
                        ModelRecord.name.in_([DEFAULT_MODEL, PRETRAINED_DEFAULT])
                    )
                )
            )
        return PRETRAINED_DEFAULT if names == {PRETRAINED_DEFAULT} else DEFAULT_MODEL

    def record_metrics(self, name: str, version: int, **entries: Any) -> None:
        """Merge ``entries`` into a version's ``metrics``; an ``evaluations`` entry is appended
        to that list rather than replacing it."""
        with self.catalog.session() as session:
            record = session.scalar(
                select(ModelRecord).where(ModelRecord.name == name, ModelRecord.version == version)
            )
            if record is None:
                raise RegistryError(f"model {name!r} version {version} is not registered")
            metrics = dict(record.metrics or {})
            for key, value in entries.items():
                if key == "evaluations":
                    metrics["evaluations"] = [*metrics.get("evaluations", []), value]
                else:
                    metrics[key] = value
            record.metrics = metrics

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


def record_training_metrics(
    catalog: Catalog, model_name: str, run_id: str, rows: Iterable[Mapping[str, Any]]
) -> int:
    """Make the catalog's TrainingMetric rows of one run exactly ``rows`` (the run's whole
    ``metrics.jsonl``: ``split``, ``name``, ``value``, ``step``, ``epoch``).

    The run's earlier rows are replaced, so recording a resumed run again never duplicates a
    scalar. Returns the number of rows written.
    """
    fresh = [
        TrainingMetric(
            model_name=model_name,
            run_id=run_id,
            step=int(row["step"]),
            epoch=row.get("epoch"),
            split=row.get("split"),
            name=str(row["name"]),
            value=float(row["value"]),
        )
        for row in rows
    ]
    with catalog.session() as session:
        session.execute(
            delete(TrainingMetric).where(
                TrainingMetric.model_name == model_name, TrainingMetric.run_id == run_id
            )
        )
        session.add_all(fresh)
    return len(fresh)


@contextmanager
def open_registry(model_root: str, catalog_url: str) -> Iterator[ModelRegistry]:
    """The registry over a catalog opened for the ``with`` block and disposed after it."""
    catalog = open_catalog(catalog_url)
    try:
        yield ModelRegistry(model_root, catalog)
    finally:
        catalog.dispose()
