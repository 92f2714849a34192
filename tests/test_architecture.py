"""The structure the code is held to: the import-linter contracts (layers; the runtime
never imports the task modules), no function-level import that only dodges a cycle, and
a provider being its own package plus one registration — shown by a toy provider booking
an invoice through the real pipeline."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import invoice_job, unique
from tests.toy_provider import simulator
from tests.toy_provider.client import ToyProvider
from tests.toy_provider.spec import SPEC as TOY
from worker import pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.providers import registry
from worker.providers.base import Plan, StepContext
from worker.tenancy.tenants import add_tenant

ROOT = Path(__file__).parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


#: Modules (outside the CLI, whose commands import what they run so `ledgerpush --help`
#: stays fast, and tasks/) that import from worker inside a function: how many, and why.
#: An import that no cycle forces belongs at the top of its module.
FUNCTION_LEVEL_IMPORTS = {
    "worker/transport/broker.py": (
        1,
        "worker/transport/app.py imports the broker transport it configures",
    ),
    "worker/transport/poison.py": (2, "the Celery app and alerts import poison via the broker"),
    "worker/web/access.py": (1, "worker/web/auth.py imports access (scopes, roles)"),
    "worker/web/accounts.py": (1, "worker/web/auth.py imports accounts"),
}

#: Not counted (a trailing slash: a whole package), and why.
NOT_REVIEWED = {
    "worker/devtools/": "the local stack puts its settings into the environment before the "
    "modules that read them are imported, so its imports wait until then",
}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _function_level_worker_imports(tree: ast.AST, in_function: bool = False) -> int:
    """`from worker…` / `import worker…` statements inside functions (not TYPE_CHECKING)."""
    count = 0
    for child in ast.iter_child_nodes(tree):
        if _type_checking(child):
            continue
        if in_function and isinstance(child, ast.ImportFrom):
            count += (child.module or "").split(".")[0] == "worker" and child.level == 0
        elif in_function and isinstance(child, ast.Import):
            count += any(alias.name.split(".")[0] == "worker" for alias in child.names)
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        count += _function_level_worker_imports(child, inside)
    return count


def test_function_level_imports_are_only_the_known_ones() -> None:
    found = {}
    for file in sorted((ROOT / "worker").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        if path.startswith(("worker/cli/", *NOT_REVIEWED)):
            continue
        count = _function_level_worker_imports(ast.parse(file.read_text()))
        if count:
            found[path] = count
    allowed = {path: count for path, (count, _reason) in FUNCTION_LEVEL_IMPORTS.items()}
    assert found == allowed, (
        "a function-level import of worker: move it to the top of the module, or if a "
        "cycle or start-up cost forces it, list it in FUNCTION_LEVEL_IMPORTS with the reason"
    )


@pytest.fixture
def toy_provider() -> Iterator[simulator.ThreadingHTTPServer]:
    server = simulator.serve()
    os.environ["TOY_API_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    registry.register(TOY)
    try:
        yield server
    finally:
        registry.unregister(TOY.name)
        server.shutdown()
        os.environ.pop("TOY_API_URL", None)


def test_a_provider_from_the_registry_alone_books_through_the_pipeline(
    toy_provider: simulator.ThreadingHTTPServer,
) -> None:
    tenant = unique("toy")
    add_tenant(tenant, "toy", "NO", {"token": "t"})
    payload = invoice_job(tenant)

    assert pipeline.process(payload).state == "booked"

    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    [document] = [d for d in simulator.DOCUMENTS.values() if d["id"] == job.remote["draft"]["id"]]
    assert document["booked"] and document["reference"] == payload["idempotency_key"]
    assert job.remote["book"] == {"number": f"T-{document['id']}"}
    assert [a.calls for a in store.attempts_of(job.id)][-1][-1]["path"].endswith("/book")


def test_a_lost_draft_answer_is_found_by_the_toy_lookup(
    toy_provider: simulator.ThreadingHTTPServer,
) -> None:
    """The pipeline's recovery is the plan's: an intent without a result is looked up."""
    tenant = unique("toy")
    add_tenant(tenant, "toy", "NO", {"token": "t"})
    payload = invoice_job(tenant)
    job_id = job_id_for(tenant, payload["idempotency_key"])
    # What a worker killed after the draft's write and before its record leaves behind:
    simulator.DOCUMENTS["999"] = {
        "id": "999", "reference": payload["idempotency_key"], "booked": False,
    }  # fmt: skip
    store.accept_job(job_id, tenant, payload["idempotency_key"], "invoice", payload)
    store.advance(job_id, "drafting", intent={"step": "draft", "at": "2020-01-01T00:00:00+00:00"})

    assert pipeline.process(payload).state == "booked"
    assert store.get_job(job_id).remote["draft"] == {"id": "999"}
    assert (
        sum(
            1
            for d in simulator.DOCUMENTS.values()
            if d.get("reference") == payload["idempotency_key"]
        )
        == 1
    )


class _CancelledWhileResolving(ToyProvider):
    """The toy provider, with an operator's cancel landing while it resolves its
    references: after the job's insert, before the run's first write."""

    def prepare(self, ctx: StepContext) -> Plan:
        job_id = job_id_for(ctx.tenant_id, ctx.job.idempotency_key)
        store.transition(job_id, "cancelled", actor="ops@example.com", note="cancelled")
        return super().prepare(ctx)


def test_a_job_cancelled_before_its_first_write_is_not_written(
    toy_provider: simulator.ThreadingHTTPServer,
) -> None:
    """The run's attempt is counted with its first intent, which checks that the job did
    not change since this delivery inserted it: a cancelled job is left as it is."""
    spec = dataclasses.replace(
        TOY, name="toycancel", client_ref=f"{__name__}:_CancelledWhileResolving"
    )
    registry.register(spec)
    try:
        tenant = unique("toy")
        add_tenant(tenant, "toycancel", "NO", {"token": "t"})
        payload = invoice_job(tenant)

        assert pipeline.process(payload).state == "cancelled"
    finally:
        registry.unregister(spec.name)
    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    assert (job.state, job.attempts, job.intent, job.remote) == ("cancelled", 0, None, {})
    assert store.attempts_of(job.id) == []
    assert not [
        d for d in simulator.DOCUMENTS.values() if d.get("reference") == payload["idempotency_key"]
    ]
