"""`atr labels export|import|batch`: the jobs behind the label loop (conf/labels.yaml).

    server  Label Studio on loopback (atr/labels/labelstudio_server.py)
    export  refresh the label queue, put the most valuable open tasks into the Label
            Studio project, most valuable first, the model's boxes as pre-annotations
    import  the project's completed annotations -> analyst feedback, each once
    batch   unbatched feedback -> data/frontline/<batch> (optionally `dvc add data`)

After `batch` with `labels.dvc_add=true`, publish the batch: `git add data.dvc &&
git commit` and `dvc push` (the push is left to the operator: it needs the remote's
credentials and is the step that makes the batch visible to other machines).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.labels.frontline_batch import write_frontline_batch
from atr.labels.frontline_images import RegistrySpecs
from atr.labels.label_queue import QueueWeights, mark_exported, open_tasks, refresh_queue
from atr.labels.labelstudio_import import import_annotations
from atr.labels.labelstudio_project import client, ensure_project, export_queue
from atr.policy.decision import Policy
from atr.policy.taxonomy import Taxonomy
from atr.store.image_store import ImageStore, open_image_store
from atr.store.prediction_store import open_store

log = logging.getLogger(__name__)


def _taxonomy(cfg: DictConfig) -> Taxonomy:
    return Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))  # type: ignore[arg-type]


def _project(cfg: DictConfig, taxonomy: Taxonomy, images: ImageStore) -> tuple[Any, int]:
    ls_cfg = cfg.labels.labelstudio
    ls = client(str(ls_cfg.url), str(ls_cfg.credentials))
    return ls, ensure_project(ls, str(ls_cfg.project), taxonomy, images)


def export(cfg: DictConfig) -> dict[str, Any]:
    lc = cfg.labels
    sessions = open_store(str(cfg.paths.prediction_db))
    policy = Policy.load(lc.policy_path) if lc.get("policy_path") else None
    weights = QueueWeights(
        review_bonus=float(lc.review_bonus),
        drift_bonus=float(lc.drift_bonus),
        window_days=None if lc.get("window_days") is None else float(lc.window_days),
    )
    queue = refresh_queue(sessions, policy, weights)
    taxonomy, images = _taxonomy(cfg), open_image_store(str(cfg.paths.image_store))
    ls, project_id = _project(cfg, taxonomy, images)
    with sessions.begin() as s:  # tasks count as exported only once Label Studio has them
        pairs = open_tasks(s, int(lc.queue_size))
        ids = export_queue(ls, project_id, pairs, taxonomy, images, Path(str(lc.image_root)),
                           policy)
        mark_exported([t for t, _ in pairs])
    return {"queue": queue, "exported": len(ids), "project_id": project_id,
            "url": f"{lc.labelstudio.url}/projects/{project_id}/data"}


def import_(cfg: DictConfig) -> dict[str, Any]:
    taxonomy = _taxonomy(cfg)
    ls, project_id = _project(cfg, taxonomy, open_image_store(str(cfg.paths.image_store)))
    sessions = open_store(str(cfg.paths.prediction_db))
    return {"project_id": project_id,
            **import_annotations(sessions, ls, project_id, taxonomy)}


def batch(cfg: DictConfig) -> dict[str, Any]:
    lc = cfg.labels
    result = write_frontline_batch(
        open_store(str(cfg.paths.prediction_db)),
        open_image_store(str(cfg.paths.image_store)),
        _taxonomy(cfg),
        str(lc.batch_dir),
        splits=dict(lc.splits),
        seed=int(lc.seed),
        min_items=int(lc.min_items),
        batch_size=int(lc.batch_size),
        # A 16-bit grey upload's model says whether it is a dual-energy pair (frontline_images)
        model_specs=RegistrySpecs(str(cfg.paths.tracking_uri),
                                  str(cfg.paths.get("registry_uri") or cfg.paths.tracking_uri)),
    )
    out: dict[str, Any] = {
        "batch": str(result.path) if result.path else None,
        "items": result.items,
        "feedback_rows": result.feedback_rows,
        "skipped": result.skipped,
    }
    if result.path is not None and lc.dvc_add:
        out["dvc"] = dvc_add(Path(str(cfg.paths.data_dir)))
    return out


def dvc_add(data_dir: Path) -> str:
    """`dvc add <data_dir>` in the DVC repository that holds it; skipped outside one."""
    data_dir = data_dir.resolve()
    repo = next((p for p in (data_dir, *data_dir.parents) if (p / ".dvc").is_dir()), None)
    if repo is None:
        log.warning("%s is not inside a DVC repository: dvc add skipped", data_dir)
        return "skipped: not a DVC repository"
    # The dvc of this environment (not whatever is on PATH); no resolve(): a venv's
    # python is a symlink and its dvc sits beside the link.
    dvc = Path(sys.executable).parent / "dvc"
    target = data_dir.relative_to(repo).as_posix()
    done = subprocess.run(
        [str(dvc), "add", "-q", target], cwd=repo, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise ValueError(
            f"dvc add {target} failed in {repo} (the batch is written and its feedback marked; "
            f"run `dvc add {target}` there by hand): {done.stderr.strip() or done.stdout.strip()}"
        )
    return f"added {target}.dvc; publish with: dvc push (and git commit {target}.dvc)"
