"""How `make test` splits the suite over its two workers (pytest-xdist, `-n 2`).

Whole modules go to one worker, so a module's servers start once; the modules that share
the one Label Studio server (its start is ~50 s of migrations) go together; and the long
end-to-end modules are handed out first, so that none of them is left to run alone at the
end. xdist's own `--dist loadgroup` cannot group here: pytest 9.2 ignores the node-id
suffix it relies on (pytest-dev/pytest-xdist#1386).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

LABELSTUDIO = "labelstudio"  # the scope of the modules that ask for the `labelstudio` fixture
LABELSTUDIO_MODULES = ("tests/labels/test_labelstudio_server.py",
                       "tests/browser/test_labelstudio_analyst.py")
# Longest first (`pytest --durations=0` on 2 cores, 2026-12-02). A stale list only costs
# time: every other module follows, the ones with more tests first.
LONG_MODULES = (
    "tests/jobs/test_demo.py", "tests/jobs/test_retrain.py",
    "tests/archive/test_archive_demo.py", "tests/pipeline/test_pipeline_repro.py",
    "tests/pipeline/test_real_archive_pipeline.py", LABELSTUDIO,
    "tests/jobs/test_train_job.py", "tests/stack/test_faults.py",
    "tests/serving/test_model_lifecycle_faults.py",
    "tests/pipeline/test_real_formats_pipeline.py", "tests/jobs/test_notebooks.py",
)


class SuiteScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return LABELSTUDIO if module in LABELSTUDIO_MODULES else module

    def schedule(self) -> None:
        """LoadScopeScheduling.schedule with the work queue in LONG_MODULES order."""
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:
                self._reschedule(node)
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = list(next(iter(self.registered_collections.values())))
        units: dict[str, dict[str, bool]] = {}
        for nodeid in self.collection:
            units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
        rank = {scope: k for k, scope in enumerate(LONG_MODULES)}
        for scope in sorted(units, key=lambda s: (rank.get(s, len(rank)), -len(units[s]))):
            self.workqueue[scope] = units[scope]
        for _ in range(max(0, len(self.nodes) - len(self.workqueue))):
            unused, _work = self.assigned_work.popitem()
            unused.shutdown()
        for node in self.nodes:
            self._assign_work_unit(node)
        for node in self.nodes:
            self._reschedule(node)
        if not self.workqueue:
            for node in self.nodes:
                node.shutdown()


def make_scheduler(config: Any, log: Any) -> SuiteScheduling:
    return SuiteScheduling(config, log)
