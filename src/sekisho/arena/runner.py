"""Running a suite: every (model, task, item) once, through the request path, resumable."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sekisho.arena.datasets import TaskData, load_task, resolve_data
from sekisho.arena.report import environment, write_report
from sekisho.arena.results import ResultStore
from sekisho.arena.suite import ArenaError, Suite, Task, suite_hash
from sekisho.arena.tasks import Context, ObservingPath, run_item
from sekisho.config import Settings
from sekisho.guard.policy import PolicyError
from sekisho.models.energy import EnergyMeter, loopback_port
from sekisho.models.protocol import BackendError

_GIVE_UP_AFTER = 3  # consecutive failed items before a model's task is abandoned for this run


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    suite_hash: str
    done: int  # items finished in this run
    skipped: int  # items already finished by an earlier run
    errors: list[str]  # one line each; those items are retried next run
    report_html: Path
    report_json: Path


def run_settings(settings: Settings, run_dir: Path) -> Settings:
    """The configuration the arena runs under: the user's backends, policy and embedder, but its
    own audit log in the run directory, so red-team prompts stay out of the organisation's log."""
    audit = settings.audit.model_copy(update={"path": str((run_dir / "audit.db").resolve()), "url": "",
                                              "key_path": str((run_dir / "audit-signing.key").resolve())})
    return settings.model_copy(update={"audit": audit})


def _kb_settings(settings: Settings, path: Path) -> Settings:
    return settings.model_copy(update={"store": settings.store.model_copy(update={"path": str(path.resolve()),
                                                                                  "url": ""})})


def _open_kb(settings: Settings, store: ResultStore, task: Task, data: TaskData, data_root: Path | None,
             run_dir: Path, console: Console):
    """The knowledge base a retrieval task asks: built once in the run dir from the task's corpus
    (built under a temporary name and renamed, so an interrupted build is never mistaken for a
    finished one); the organisation's configured knowledge base when the task brings no corpus."""
    from sekisho.retrieval import open_knowledge_base

    if not data.corpus and not task.documents:
        return open_knowledge_base(settings)
    kb_dir = run_dir / "kb"
    kb_dir.mkdir(exist_ok=True)
    final = kb_dir / f"{task.id}.db"
    if store.get_meta(f"kb:{task.id}") != data.digest or not final.exists():
        from sekisho.ingest import ingest_paths, ingest_text

        building = kb_dir / f"{task.id}.building.db"
        for stale in kb_dir.glob(f"{task.id}.*db*"):
            stale.unlink()
        kb = open_knowledge_base(_kb_settings(settings, building))
        try:
            if task.documents:
                ingest_paths(kb, [resolve_data(task.documents, data_root)], progress=False)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as progress:
                bar = progress.add_task(f"知識ベース構築 (building KB) {task.id}", total=len(data.corpus))
                for doc in data.corpus:
                    ingest_text(kb, path=doc.path, title=doc.title, text=doc.text)
                    progress.advance(bar)
        finally:
            kb.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{building}{suffix}").unlink(missing_ok=True)
        building.rename(final)
        store.set_meta(f"kb:{task.id}", data.digest)
    return open_knowledge_base(_kb_settings(settings, final))


def _unselected_digests(suite: Suite, selected: Sequence[Task], data: Path | None, seed: int) -> dict[str, str]:
    """The data digests of the tasks not run, so a run of some tasks resumes into one of all of
    them over the same data; a task whose data is not here (or not in a --data FILE meant for
    the selected ones) is hashed as absent rather than refused, since it is not run."""
    chosen = {t.id for t in selected}
    digests = {}
    for task in suite.tasks:
        if task.id in chosen:
            continue
        try:
            digests[task.id] = "absent" if data is not None and data.is_file() else load_task(task, data, seed=seed).digest
        except ArenaError:
            digests[task.id] = "absent"
    return digests


def run_suite(settings: Settings, suite: Suite, models: Sequence[str], run_dir: Path, *, limit: int | None = None,
              data: Path | None = None, tasks: Sequence[str] | None = None,
              watts_per_core: float | None = None, console: Console | None = None) -> RunSummary:
    """Ask every item of every task (or of `tasks` only) of every model, skipping what an earlier
    run into the same directory finished, then write the report over all stored results."""
    console = console or Console(stderr=True)
    watts_per_core = settings.models.watts_per_core if watts_per_core is None else watts_per_core
    if not models:
        raise ArenaError("no models to run (give --models a,b or list models in the suite)")
    unknown = [m for m in models if m not in settings.models.backends]
    if unknown:
        raise ArenaError(f"unknown model {unknown[0]!r}; configured backends: {', '.join(settings.models.backends)}")
    selected = [suite.task(t) for t in tasks] if tasks else list(suite.tasks)
    if data is not None and data.is_file() and len({t.data for t in selected if t.data}) > 1:
        raise ArenaError(f"--data {data}: the selected tasks read several data files; give the folder that holds them"
                         " or choose tasks with --tasks")
    loaded = {t.id: load_task(t, data, seed=suite.seed) for t in selected}
    for t in selected:
        for line in loaded[t.id].skipped:
            console.print(f"[yellow]skipped:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    digest = suite_hash(suite, {**_unselected_digests(suite, selected, data, suite.seed),
                                **{tid: d.digest for tid, d in loaded.items()}})
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ResultStore(run_dir)
    settings = run_settings(settings, run_dir)
    done = skipped = 0
    errors: list[str] = []
    try:
        store.set_meta("suite_hash", digest)
        store.set_meta("suite", {"source": suite.source, "path": suite.path})
        invocation = {"limit": limit, "tasks": [t.id for t in selected], "data": str(data) if data else "",
                      "models": list(models), "watts_per_core": watts_per_core,
                      "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        store.set_meta("run", invocation)
        store.set_meta("runs", store.get_meta("runs", []) + [invocation])
        store.set_meta("environment", environment())
        try:
            request_path = ObservingPath(settings)
        except PolicyError as exc:
            raise ArenaError(str(exc)) from None
        kbs = {t.id: _open_kb(settings, store, t, loaded[t.id], data, run_dir, console)
               for t in selected if t.kind in ("open_domain", "refusal")}
        try:
            for model in models:
                try:
                    backend = request_path.backend(model)
                    info = backend.info()
                    backend.check()
                except BackendError as exc:
                    errors.append(f"{model}: {exc}")
                    console.print(f"[red]error:[/red] {escape(f'{model}: {exc}')}", highlight=False, soft_wrap=True)
                    continue
                meter = EnergyMeter(watts_per_core=watts_per_core,
                                    server_port=loopback_port(settings.models.backends.get(model)))
                store.set_model(digest, model, info.to_json(), asdict(meter.source))
                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=console) as progress:
                    for task in selected:
                        items = loaded[task.id].items[: limit or task.limit or None]
                        finished = store.done_ids(digest, task.id, model)
                        todo = [it for it in items if it.id not in finished]
                        skipped += len(items) - len(todo)
                        bar = progress.add_task(f"{model} · {task.id}", total=len(items),
                                                completed=len(items) - len(todo))
                        ctx = Context(path=request_path, backend=model, kb=kbs.get(task.id), start_energy=meter.start)
                        failures = 0
                        for item in todo:
                            try:
                                result = run_item(task, item, ctx, model)
                            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the batch
                                message = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
                                store.add_error(digest, task.id, model, item.id, message)
                                errors.append(f"{model} · {task.id} · {item.id}: {message}")
                                failures += 1
                                if failures >= _GIVE_UP_AFTER:
                                    console.print(f"[red]{escape(f'{model} · {task.id}: {message}')} — 中断 (giving up)[/red]",
                                                  highlight=False, soft_wrap=True)
                                    break
                                continue
                            failures = 0
                            store.add(digest, result)
                            done += 1
                            progress.advance(bar)
        finally:
            for kb in kbs.values():
                kb.close()
            request_path.close()
        html, js = write_report(store, run_dir)
    finally:
        store.close()
    return RunSummary(run_dir, digest, done, skipped, errors, html, js)


def rebuild_report(run_dir: Path) -> tuple[Path, Path]:
    """Write report.html and report.json again from the stored results (no model is called)."""
    store = ResultStore.open_existing(run_dir)
    try:
        return write_report(store, run_dir)
    finally:
        store.close()
