"""Files a tenant brings from the controller (its LoRA adapters, its private model):
listed on the controller before anything changes, each with its size and sha256, which
go into the plan record. The tenant role copies exactly these onto the tenant's own
volume and deletes anything else there (filter tenancy_file_leftovers), so the record's
digests are what the engine reads."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from ansible_collections.tenancy.core.plugins.plugin_utils.common import field_error


@functools.lru_cache(maxsize=4096)
def _digest(path: str, _size: int, _mtime_ns: int) -> str:
    """A file's sha256, read again only when its size or time changes (a playbook run
    plans several times)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing(directory: Path, tenant: str, field: str, value: Any, flat: bool) -> list[dict[str, Any]]:
    """Every file under ``directory`` as {name (relative path), bytes, sha256}, sorted.
    Refused (naming the tenant, the field and the value): a link, anything that is not a
    plain file or directory, a subdirectory where ``flat``, an empty directory."""
    files = []
    for entry in sorted(directory.rglob("*")):
        relative = entry.relative_to(directory).as_posix()
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            raise field_error(tenant, field, value, f"{entry} is not a plain file (links are not copied)")
        if entry.is_dir():
            if flat:
                raise field_error(tenant, field, value, f"{entry} is a directory; an adapter is a flat directory")
            continue
        info = entry.stat()
        files.append(
            {"name": relative, "bytes": info.st_size, "sha256": _digest(str(entry), info.st_size, info.st_mtime_ns)}
        )
    if not files:
        raise field_error(tenant, field, value, f"{directory} holds no files")
    return files


def private_model(tenant: dict[str, Any]) -> None:
    """A private model's files (tenant field model_private), into ``model_files``: a
    directory on the controller with the model's config.json."""
    directory = Path(tenant["model"])
    if not (directory / "config.json").is_file():
        raise field_error(
            tenant["name"],
            "model",
            tenant["model"],
            "with model_private, a model directory on the controller with its config.json (not found there)",
        )
    tenant["model_files"] = listing(directory, tenant["name"], "model", tenant["model"], flat=False)
