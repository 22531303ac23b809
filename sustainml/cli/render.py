"""How the CLI shows a task: its stages live while it runs, one summary row per task of a batch,
and the stored result (what changes its meaning first, then every stage's record)."""

from __future__ import annotations

import json
import time

from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sustainml.cli.common import out
from sustainml.display import clarification, figures_are_placeholders, task_alerts
from sustainml.messages import UNITS, TaskId, to_json_dict
from sustainml.orchestrator.client import Client, StageEvent
from sustainml.orchestrator.protocol import TaskResult
from sustainml.topology import PIPELINE


def summary_row(r: TaskResult) -> list[str]:
    meta = r.outputs.get("ml_model_metadata")
    model = r.outputs.get("ml_model")
    hw = r.outputs.get("hw_resources")
    co2 = r.outputs.get("carbon_footprint")
    return [
        str(r.task_id),
        r.state,
        (getattr(meta, "ml_model_metadata", None) or ["-"])[0] if meta else "-",
        getattr(model, "model", "-") or "-",
        getattr(hw, "hw_description", "-") or "-",
        f"{getattr(hw, 'latency', 0.0):.4g}" if hw else "-",
        f"{getattr(co2, 'energy_consumption', 0.0):.4g}" if co2 else "-",
        f"{getattr(co2, 'carbon_footprint', 0.0):.4g}" if co2 else "-",
    ]


def wait_live(client: Client, task_id: TaskId, timeout: float) -> TaskResult:
    """Show the six stages as they complete, then return the stored result."""
    seen: dict[str, tuple[float, str | None]] = {}
    start = time.monotonic()

    def render() -> Table:
        t = Table(title=f"task {task_id}", show_header=True)
        t.add_column("node")
        t.add_column("state")
        t.add_column("at (ms)", justify="right")
        running_marked = False
        for stage in PIPELINE:
            if stage.node in seen:
                at, failed = seen[stage.node]
                state = f"[red]failed: {failed}[/]" if failed else "[green]done[/]"
                t.add_row(stage.node, state, f"{at * 1e3:.0f}")
            elif not running_marked and not any(f for _, f in seen.values()):
                t.add_row(stage.node, "[yellow]running[/]", "")
                running_marked = True
            else:
                t.add_row(stage.node, "[dim]waiting[/]", "")
        return t

    if not out.is_terminal:

        def on_line(ev: StageEvent) -> None:
            if ev.task_id == task_id:
                state = f"failed: {ev.failed}" if ev.failed else "done"
                out.print(
                    f"[{(time.monotonic() - start) * 1e3:7.0f} ms] {ev.node:<18} {state}",
                    highlight=False,
                    soft_wrap=True,
                )

        return client.wait(task_id, timeout, on_line)

    with Live(render(), console=out, refresh_per_second=12, transient=False) as live:

        def on_event(ev: StageEvent) -> None:
            if ev.task_id == task_id:
                seen[ev.node] = (time.monotonic() - start, ev.failed)
                live.update(render())

        return client.wait(task_id, timeout, on_event)


#: Longest value shown in a result table unless --full (the reasoning texts run to kilobytes).


CUT_AT = 600


def print_result(r: TaskResult, *, full: bool = False) -> None:
    """The task's state, what changes its meaning (no feasible model, constraints not met, a
    question for the user), its goal, then every stage's record."""
    alerts = task_alerts(r.outputs)
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(r.state, "white")
    headline = f"task {r.task_id}: [{colour}]{r.state}[/]"
    if r.error:
        headline += f" — {escape(r.error)}"
    blocking = [a for a in alerts if a.kind in ("no_model", "constraints_not_met")]
    if blocking and r.state == "succeeded":  # the pipeline ran through, but the answer is "none fits"
        what = {"no_model": "NO FEASIBLE MODEL", "constraints_not_met": "CONSTRAINTS NOT MET"}
        headline = (
            f"task {r.task_id}: [bold yellow]{what[blocking[0].kind]}[/] (every stage ran; read why below)"
        )
    out.print(headline, soft_wrap=True)
    for alert in blocking:
        out.print(f"  [bold yellow]{alert.node}:[/] {escape(alert.title)}", soft_wrap=True)
        for key, value in alert.details.items():
            out.print(f"    {key.replace('_', ' ')}: {escape(value)}", soft_wrap=True, highlight=False)
    if figures_are_placeholders(r.outputs):
        out.print(
            "  (latency, power, energy and carbon below are placeholders: no model was costed)",
            soft_wrap=True,
        )
    if r.note:
        out.print(f"note: {escape(r.note)}", soft_wrap=True, highlight=False)
    meta = r.outputs.get("ml_model_metadata")
    goals = list(getattr(meta, "ml_model_metadata", None) or [])
    if goals:
        goal = f"goal: [bold]{escape(goals[0])}[/]"
        question = clarification(r.outputs)
        if question:
            goal += f"  [bold yellow]needs clarification:[/] {escape(question)}"
        out.print(goal, soft_wrap=True, highlight=False)
    cut = False
    for stage in PIPELINE:
        rec = r.outputs.get(stage.kind)
        if rec is None:
            continue
        data = to_json_dict(rec)
        data.pop("task_id", None)
        table = Table(title=stage.node, show_header=False, title_justify="left", expand=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in data.items():
            if key == "input_batch":
                value = f"{len(value)} array(s)"
            elif key == "raw_model":
                value = f"{len(value)} base64 chars" if value else ""
            elif isinstance(value, float):
                value = f"{value:.6g}"
            label = f"{key} [{UNITS[key]}]" if key in UNITS else key
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if not full and len(text) > CUT_AT:
                text, cut = text[:CUT_AT] + f" … ({len(text) - CUT_AT} more characters)", True
            # Text, not markup: "[s]" or a JSON list must print as written.
            table.add_row(Text(label), Text(text))
        out.print(table)
    if cut:
        p, i = r.task_id.problem_id, r.task_id.iteration_id
        out.print(
            f"(long values cut: `sustainml result {p} {i} --full` shows them whole)",
            highlight=False,
            soft_wrap=True,
        )


