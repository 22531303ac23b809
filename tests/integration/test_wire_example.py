"""docs/wire-format.md stays true: its generated tables match the code, its pika-only example
script follows a real task through a real deployment, and a watch queue gets the one binding the
document promises.

The generated sections of the document (between ``<!-- BEGIN GENERATED: x -->`` and
``<!-- END GENERATED: x -->``) are produced by the functions below from ``sustainml.topology``,
``sustainml.messages.types`` and the AMQP transport's queue arguments. After changing any of
those, rewrite them with::

    .venv/bin/python tests/integration/test_wire_example.py --write
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import time
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any

import msgpack
import pika
import pika.exceptions
import pytest
from annotated_types import Ge, Le, MaxLen
from pika.adapters.blocking_connection import BlockingChannel
from pydantic.fields import FieldInfo

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import from_wire, limits
from sustainml.messages import types as T
from sustainml.messages.kinds import RECORD_KINDS, USER_INPUT, NodeID
from sustainml.topology import (
    ALL_NODES_KEY,
    NODE_NAMES,
    PIPELINE,
    STAGES_BY_KIND,
    Topology,
)
from sustainml.transport.amqp import queue_arguments  # the exact x-arguments sent on the wire
from sustainml.transport.base import QueueSpec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "wire-format.md"
SCRIPT = ROOT / "docs" / "examples" / "raw_pika_submit.py"
NS = "<ns>"  # the namespace placeholder used in the document's tables

# Every private (per-process) queue purpose the code declares, and who declares it. The doc test
# below scans the source for private_queue(...) calls, so a new purpose cannot go undocumented.
PRIVATE_QUEUES: dict[str, tuple[str, str, str]] = {
    # purpose: (owner id, declared by, bindings / what arrives)
    "control": (
        "<replica_id>",
        "every node replica",
        f"`{NS}.control` with `<NODE_NAME>` and `{ALL_NODES_KEY}`: NodeControl",
    ),
    "status-monitor": ("<orchestrator_id>", "the orchestrator", f"`{NS}.status` (fanout): NodeStatus"),
    "reply": (
        "<client_id>",
        "every RPC client (orchestrator: `orchestrator-<id>`, Python client: `client-<id>`)",
        "none; replies arrive through the default exchange",
    ),
    "watch": (
        "<client_id>",
        "a client that watches its submissions",
        "none with `watch_mode` `direct`: the orchestrator publishes the TaskEvents of each task "
        "submitted with it straight to it (default exchange); otherwise "
        f"`{NS}.tasks` with `p.i`: bound by the orchestrator for each task submitted with it, "
        "unbound once the task is over (§9.8)",
    ),
    "api-events": (
        "<orchestrator_id>",
        "the HTTP API (`sustainml up`, `orchestrator --http`)",
        f"`{NS}.tasks` with `#` and `{NS}.status` (fanout): feeds `GET /v1/events`, long-polls, `/metrics`",
    ),
    "bench-events": (
        "<bench_id>",
        "`sustainml bench` (our pipeline's run)",
        f"`{NS}.tasks` with `#`: TaskStatus of the benchmark's tasks",
    ),
    "bench-out": (
        "<bench_id>",
        "`sustainml bench` (its scaling part)",
        f"`{NS}.hw_resources` with `#`: counts the outputs of the stage being scaled",
    ),
}
PRIVATE_QUEUE_SOURCES = ("sustainml", "workers", "orchestrator")


# --------------------------------------------------------------------------------------------
# Generated sections
# --------------------------------------------------------------------------------------------
def _exchange_roles(topo: Topology) -> dict[str, tuple[str, str]]:
    """exchange name -> (what flows on it, who publishes)."""
    roles: dict[str, tuple[str, str]] = {}
    for kind in RECORD_KINDS:
        cls = T.RECORD_TYPES[kind].__name__
        if kind == USER_INPUT:
            roles[topo.record_exchange(kind)] = (f"stage messages of `{cls}`: a task starts", "orchestrator")
        else:
            node = STAGES_BY_KIND[kind].node
            roles[topo.record_exchange(kind)] = (f"stage messages of `{cls}` (output of {node})", node)
    roles[topo.task_exchange] = (
        "`TaskEvent`: a task state change (with the stage output just stored), after it is stored",
        "orchestrator",
    )
    roles[topo.status_exchange] = ("`NodeStatus`: heartbeats and per-task events", "every node replica")
    roles[topo.control_exchange] = ("`NodeControl` commands", "orchestrator, operators")
    roles[topo.config_exchange] = ("`RequestType` configuration requests", "orchestrator, clients")
    roles[topo.dead_letter_exchange] = ("messages that could not be processed", "nodes, orchestrator, broker")
    return roles


def exchanges_table(topo: Topology | None = None) -> str:
    topo = topo or Topology(NS)
    roles = _exchange_roles(topo)
    rows = [
        "| Exchange | Type | Durable | Routing key | Carries | Published by |",
        "|---|---|---|---|---|---|",
    ]
    for ex in topo.exchanges():
        if ex.name not in roles:
            raise KeyError(
                f"exchange {ex.name!r} has no description in tests/integration/test_wire_example.py"
            )
        carries, publisher = roles[ex.name]
        if ex.name == topo.status_exchange:
            key = "node name (ignored: fanout)"
        elif ex.name == topo.control_exchange:
            key = f"node name or `{ALL_NODES_KEY}`"
        elif ex.name == topo.config_exchange:
            key = "node name"
        elif ex.name == topo.dead_letter_exchange:
            key = "name of the queue the message came from"
        else:
            key = "`<problem_id>.<iteration_id>`"
        durable = "yes" if ex.durable else "no"
        rows.append(f"| `{ex.name}` | {ex.type} | {durable} | {key} | {carries} | {publisher} |")
    rows.append(
        '| default (`""`) | direct | (built in) | queue name | orchestrator requests, every RPC reply '
        "| clients, orchestrator, nodes |"
    )
    return "\n".join(rows)


def _args_text(spec: QueueSpec) -> str:
    args = queue_arguments(spec)
    return "<br>".join(f"`{k}={v}`" for k, v in args.items())


def _queue_role(topo: Topology, name: str) -> str:
    for stage in PIPELINE:
        if name == topo.stage_queue(stage):
            return f"{stage.node} replicas compete on it"
        if name == topo.config_queue(stage):
            return f"{stage.node} replicas (one of them answers)"
    if name == topo.orchestrator_results_queue:
        return "orchestrator: stores each task's outcome (every record of the task) once"
    if name == topo.orchestrator_progress_queue:
        return "orchestrator: task events and `current_stage` (nothing stored from it)"
    if name == topo.orchestrator_requests_queue:
        return "orchestrator: submissions and operator requests"
    if name.endswith(".dlq"):
        return "nobody (inspect with `sustainml dlq`)"
    if name.startswith(f"{topo.ns}.retry."):
        return "nobody: a retried input waits out the TTL, then returns to its stage queue"
    raise KeyError(f"queue {name!r} has no description in tests/integration/test_wire_example.py")


def queues_table(topo: Topology | None = None) -> str:
    topo = topo or Topology(NS)
    rows = [
        "| Queue | Durable | Arguments | Bindings (exchange: key) | Consumed by |",
        "|---|---|---|---|---|",
    ]
    for q in [*topo.durable_queues(), *topo.retry_queues()]:
        bindings = "<br>".join(f"`{b.exchange}`: `{b.routing_key}`" for b in q.bindings) or "none"
        durable = "yes" if q.durable else "no"
        rows.append(
            f"| `{q.name}` | {durable} | {_args_text(q)} | {bindings} | {_queue_role(topo, q.name)} |"
        )
    return "\n".join(rows)


def private_queues_table(topo: Topology | None = None) -> str:
    topo = topo or Topology(NS)
    rows = ["| Queue | Durable | Arguments | Declared by | Bindings |", "|---|---|---|---|---|"]
    for purpose, (owner, declared_by, bindings) in PRIVATE_QUEUES.items():
        spec = topo.private_queue_spec(purpose, owner)
        durable = "yes" if spec.durable else "no"
        rows.append(f"| `{spec.name}` | {durable} | {_args_text(spec)} | {declared_by} | {bindings} |")
    return "\n".join(rows)


def private_queue_purposes_in_code() -> set[str]:
    """Purposes passed to ``Topology.private_queue``/``private_queue_spec`` anywhere in the code."""
    pattern = re.compile(r"private_queue(?:_spec)?\(\s*\"([^\"]+)\"")
    found: set[str] = set()
    for top in PRIVATE_QUEUE_SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


# Units: the seed's units from messages/types.py (by field name), plus NodeStatus' own.
EXTRA_UNITS: dict[tuple[str, str], str] = {
    ("NodeStatus", "heartbeat_interval"): "s",
    ("NodeStatus", "timestamp"): "s since the Unix epoch",
}


def unit_of(type_name: str, field: str) -> str:
    return EXTRA_UNITS.get((type_name, field)) or T.UNITS.get(field, "")


# IDL types where the annotation alone does not say (upstream's IDL, data-model.txt).
IDL_OVERRIDES: dict[tuple[str, str], str] = {
    ("MLModel", "input_batch"): "sequence&lt;string&gt; (here: .npy bytes)",
    ("RequestType", "transaction_id"): "int",
    ("ResponseType", "transaction_id"): "int",
    ("UserInput", "task_id"): "TaskIdImpl",
}
TASK_ID_IDL = "long (here: TaskId)"  # every other record's task_id
EXTENSION_NOTE = "— (sustainml)"
IDL_FIELDS: dict[str, tuple[str, ...]] = {  # seed IDL fields of the types that extend it
    "NodeStatus": ("node_status", "task_status", "error_code", "task_id", "error_description", "node_name"),
}


def _bounds(info: FieldInfo) -> tuple[int | float | None, int | float | None, int | None]:
    lo: int | float | None = None
    hi: int | float | None = None
    size: int | None = None
    for m in info.metadata:
        if isinstance(m, Ge):
            lo = m.ge  # type: ignore[assignment]
        elif isinstance(m, Le):
            hi = m.le  # type: ignore[assignment]
        elif isinstance(m, MaxLen):
            size = m.max_length
    return lo, hi, size


def _num(n: float) -> str:
    if n == T.ULONG_MAX:
        return "2^32-1"
    if n == T.LONG_MAX:
        return "2^31-1"
    if n == T.LONG_MIN:
        return "-2^31"
    if n == T.COUNTER_MAX:
        return "2^63-1"
    return f"{n:g}" if isinstance(n, float) else str(n)


def _size(n: int) -> str:
    if n % limits.MIB == 0:
        return f"{n // limits.MIB} MiB"
    return f"{n:,}"


def _item_annotation(ann: Any) -> Any:
    item = typing.get_args(ann)[0]
    return typing.get_args(item)[0] if typing.get_origin(item) is typing.Annotated else item


def _item_max(ann: Any) -> int | None:
    item = typing.get_args(ann)[0]
    if typing.get_origin(item) is typing.Annotated:
        for meta in typing.get_args(item)[1:]:
            for m in getattr(meta, "metadata", []):
                if isinstance(m, MaxLen):
                    return m.max_length
    return None


def _describe_field(cls: type[T.Record], name: str, info: FieldInfo) -> tuple[str, str, str, str]:
    """(msgpack type, IDL type, range, default) of one field."""
    ann = info.annotation
    lo, hi, size = _bounds(info)
    default: Any = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    required = default is not None and type(default).__name__ == "PydanticUndefinedType"
    if isinstance(ann, type) and issubclass(ann, IntEnum):
        members = list(ann)
        mp, idl = "int", f"enum {ann.__name__}"
        rng = f"{int(members[0])}..{int(members[-1])} (see §7.6)"
        dflt = f"{int(default)} ({default.name})"
    elif ann is bool:
        mp, idl, rng, dflt = "bool", "boolean", "true / false (not 0/1)", str(default).lower()
    elif ann is int:
        mp = "int"
        idl = {T.ULONG_MAX: "unsigned long", T.LONG_MAX: "long"}.get(hi, EXTENSION_NOTE)  # type: ignore[arg-type]
        rng = f"{_num(lo) if lo is not None else '-∞'}..{_num(hi) if hi is not None else '∞'}"
        dflt = "required" if required else str(default)
    elif ann is float:
        mp, idl = "float64", "double"
        rng = "finite" + (f", >= {_num(lo)}" if lo is not None else "")
        dflt = "required" if required else repr(float(default))
    elif ann is str:
        mp, idl = "str (UTF-8)", "string"
        rng = f"<= {_size(size)} chars" if size else "any"
        dflt = '""'
    elif ann is bytes:
        mp, idl = "bin", "sequence&lt;octet&gt;"
        rng = f"<= {_size(size)}" if size else "any"
        if name == "extra_data":
            rng += "; empty or msgpack map, str keys (§7.7)"
        dflt = 'bin ""'
    elif typing.get_origin(ann) is list and _item_annotation(ann) is str:
        mp, idl = "array of str", "sequence&lt;string&gt;"
        per = _item_max(ann)
        rng = f"<= {size:,} items" + (f", each <= {_size(per)} chars" if per else "")
        dflt = "[]"
    elif typing.get_origin(ann) is list and _item_annotation(ann) is bytes:
        mp, idl = "array of bin", "sequence&lt;octet&gt;"
        rng = f"<= {size:,} items, <= {_size(limits.MAX_INPUT_BATCH_BYTES)} in total; each a .npy file (§7.8)"
        dflt = "[]"
    elif typing.get_origin(ann) in (types.UnionType, typing.Union) and T.TaskId in typing.get_args(ann):
        mp, idl, rng, dflt = "map {problem_id, iteration_id} or nil", TASK_ID_IDL, "see TaskId", "nil"
    elif typing.get_origin(ann) is typing.Literal:
        values = typing.get_args(ann)
        mp, idl, rng, dflt = "str", "string", " / ".join(f'"{v}"' for v in values), f'"{default}"'
    else:  # a new kind of field: make the generator learn it rather than guess
        raise TypeError(f"{cls.__name__}.{name}: no wire description for annotation {ann!r}")
    key = (cls.__name__, name)
    if key in IDL_OVERRIDES:
        idl = IDL_OVERRIDES[key]
    elif cls.__name__ in IDL_FIELDS and name not in IDL_FIELDS[cls.__name__]:
        idl = EXTENSION_NOTE
    return mp, idl, rng, dflt


def field_tables() -> str:
    out: list[str] = []
    for type_name, cls in T.MESSAGE_TYPES.items():
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        doc = re.sub(r":[a-z]+:`([^`]+)`", r"`\1`", doc).replace("``", "`")
        out.append(f"#### {type_name}\n\n{doc}\n")
        out.append("| # | Field | msgpack | IDL | Range | Unit | Default | Meaning |")
        out.append("|---|---|---|---|---|---|---|---|")
        for i, (name, info) in enumerate(cls.model_fields.items()):
            mp, idl, rng, dflt = _describe_field(cls, name, info)
            unit = unit_of(type_name, name)
            meaning = (info.description or "").replace("|", "\\|")
            out.append(f"| {i} | `{name}` | {mp} | {idl} | {rng} | {unit} | {dflt} | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip()


ENUMS: tuple[type[IntEnum], ...] = (T.Status, T.TaskStatus, T.ErrorCode, T.CmdNode, T.CmdTask, NodeID)


def enum_tables() -> str:
    rows = ["| Enum | Wire values (int = name) |", "|---|---|"]
    for enum in ENUMS:
        rows.append(f"| `{enum.__name__}` | " + ", ".join(f"{int(m)} = `{m.name}`" for m in enum) + " |")
    return "\n".join(rows)


def pipeline_table() -> str:
    rows = [
        "| # | Node | NodeID | Consumes (queue) | Publishes to | Record type | Callback inputs |",
        "|---|---|---|---|---|---|---|",
    ]
    topo = Topology(NS)
    for i, s in enumerate(PIPELINE, 1):
        rows.append(
            f"| {i} | `{s.node}` | {int(s.node_id)} | `{topo.stage_queue(s)}` "
            f"(from `{topo.record_exchange(s.input_kind)}`) | `{topo.record_exchange(s.kind)}` "
            f"| `{T.RECORD_TYPES[s.kind].__name__}` | {', '.join(s.callback_inputs)} |"
        )
    return "\n".join(rows)


def limits_table() -> str:
    rows = ["| Limit | Value |", "|---|---|"]
    for name in limits.__all__:
        if name.startswith("MAX_"):
            value = getattr(limits, name)
            shown = _size(value) if "BYTES" in name else f"{value:,}"
            rows.append(f"| `{name}` | {shown} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "pipeline": pipeline_table,
    "exchanges": exchanges_table,
    "queues": queues_table,
    "private-queues": private_queues_table,
    "fields": field_tables,
    "enums": enum_tables,
    "limits": limits_table,
}
_BLOCK = re.compile(
    r"^(<!-- BEGIN GENERATED: ([a-z-]+) -->\n)(.*?)^(<!-- END GENERATED: \2 -->)$", re.DOTALL | re.MULTILINE
)


def generated_blocks(text: str) -> dict[str, str]:
    """Block name -> its current content (without the final newline)."""
    return {m.group(2): m.group(3).removesuffix("\n") for m in _BLOCK.finditer(text)}


def render(text: str) -> str:
    """``text`` with every generated block replaced by what the code says today."""
    return _BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group(2)]() + "\n" + m.group(4), text)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_generated_sections_of_wire_format_match_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = generated_blocks(text)
    assert set(blocks) == set(GENERATORS), "every generator has exactly one block in the document"
    for name, generate in GENERATORS.items():
        assert blocks[name] == generate(), (
            f"docs/wire-format.md section {name!r} is stale: run "
            "`.venv/bin/python tests/integration/test_wire_example.py --write`"
        )


def test_every_private_queue_purpose_is_documented() -> None:
    assert private_queue_purposes_in_code() == set(PRIVATE_QUEUES)


def _script_tree() -> ast.Module:
    return ast.parse(SCRIPT.read_text(encoding="utf-8"))


def test_example_script_imports_only_pika_msgpack_and_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(_script_tree()):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert outside == {"pika", "msgpack"}


def test_example_script_makes_no_binding_itself() -> None:
    # §9.8: the orchestrator makes the watch queue's one binding; the script must not need more.
    called = {
        node.func.attr
        for node in ast.walk(_script_tree())
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert called & {"queue_bind", "exchange_bind"} == set()
    assert {"queue_declare", "basic_publish", "consume", "queue_delete"} <= called


def _delete_namespace(url: str, topo: Topology, private_queues: list[str]) -> None:
    """Remove everything the deployment declared: shared queues, private queues, exchanges."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in [q.name for q in topo.durable_queues()] + private_queues:
            channel.queue_delete(name)
        for ex in topo.exchanges():
            channel.exchange_delete(ex.name)
    finally:
        connection.close()


@pytest.fixture
def deployment(amqp_url: str, tmp_path: Path) -> Iterator[tuple[Settings, LocalDeployment]]:
    settings = Settings(
        broker_url=amqp_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
    )
    topo = Topology(settings.namespace)
    dep = LocalDeployment(settings, amqp_transports(settings))
    try:
        dep.start()
        yield settings, dep
    finally:
        private = [topo.private_queue("control", n.replica_id) for n in dep.nodes]
        if dep.orchestrator is not None:
            oid = dep.orchestrator.id
            private += [
                topo.private_queue("status-monitor", oid),
                topo.private_queue("reply", f"orchestrator-{oid}"),
            ]
        dep.stop()
        _delete_namespace(amqp_url, topo, private)


START_LINE = re.compile(r"^\[\s*[0-9.]+s\] task ([0-9]+\.[0-9]+) running at ([A-Z_]+)$")
STAGE_LINE = re.compile(r"^\[\s*[0-9.]+s\] ([A-Z_]+) task ([0-9]+\.[0-9]+): (.*)$")


def _run_script(amqp_url: str, namespace: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--url",
            amqp_url,
            "--namespace",
            namespace,
            "--description",
            "detect defects in photos of welded seams",
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )


def _watch_queue_of(stdout: str) -> str:
    return next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("watch_queue: "))


def _assert_queue_gone(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
            connection.channel().queue_declare(queue, passive=True)
        assert err.value.reply_code == 404
    finally:
        connection.close()


@pytest.mark.integration
def test_raw_pika_example_submits_and_follows_a_task(
    amqp_url: str, deployment: tuple[Settings, LocalDeployment]
) -> None:
    settings, _dep = deployment
    proc = _run_script(amqp_url, settings.namespace, timeout=60)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert "task_id: 1.1" in lines
    starts = [m.groups() for m in map(START_LINE.match, lines) if m]
    assert starts == [("1.1", PIPELINE[0].node)]
    stages = [m.groups() for m in map(STAGE_LINE.match, lines) if m]
    assert [node for node, _, _ in stages] == list(NODE_NAMES)  # once each, in pipeline order
    assert {task for _, task, _ in stages} == {"1.1"}
    fields = {node: shown for node, _, shown in stages}
    # The key fields come from the record carried by each TaskEvent.
    assert re.fullmatch(r'model="[^"]+"', fields["ML_MODEL"]), fields["ML_MODEL"]
    assert re.fullmatch(r"carbon_footprint=\S+ energy_consumption=\S+", fields["CARBON_FOOTPRINT"])
    assert float(fields["CARBON_FOOTPRINT"].split()[0].split("=")[1]) > 0
    assert lines.index(next(line for line in lines if START_LINE.match(line))) < lines.index(
        next(line for line in lines if STAGE_LINE.match(line))
    )
    assert lines[-1] == "task 1.1 succeeded"
    watch = _watch_queue_of(proc.stdout)
    assert watch.startswith(f"{settings.namespace}.watch.")
    _assert_queue_gone(amqp_url, watch)  # the script removed its private queue on the way out


def _routable(channel: BlockingChannel, exchange: str, key: str) -> bool:
    """Whether a mandatory publish to ``exchange``/``key`` reaches at least one queue."""
    try:
        channel.basic_publish(exchange, key, b"probe", pika.BasicProperties(type="probe"), mandatory=True)
    except pika.exceptions.UnroutableError:
        return False
    return True


@pytest.mark.integration
def test_watch_queue_gets_one_binding_removed_when_the_task_ends(
    amqp_url: str, deployment: tuple[Settings, LocalDeployment]
) -> None:
    """§9.8: the orchestrator binds the watch queue to <ns>.tasks with the task's key before the
    start event, every stage output arrives as a TaskEvent with its record, and the binding is
    gone once the task is over."""
    settings, _dep = deployment
    topo = Topology(settings.namespace)
    watch = topo.private_queue("watch", f"test-{uuid.uuid4().hex[:8]}")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        channel.queue_declare(watch, durable=True, arguments={"x-expires": 60_000})
        assert not _routable(channel, topo.task_exchange, "1.1")  # nobody follows task 1.1 yet
        request = {"schema_version": 1, "op": "submit", "user_input": {"modality": "image"}}
        channel.basic_publish(
            "",
            topo.orchestrator_requests_queue,
            msgpack.packb(request, use_bin_type=True),
            pika.BasicProperties(
                correlation_id="c1", reply_to=watch, expiration="30000", headers={"watch_queue": watch}
            ),
            mandatory=True,
        )
        reply: dict[str, Any] | None = None
        events: list[dict[str, Any]] = []
        for method, props, body in channel.consume(watch, auto_ack=True, inactivity_timeout=30):
            assert method is not None and props is not None and body is not None, (
                f"nothing for 30 s; events so far: {events}"
            )
            if method.exchange == "":
                reply = msgpack.unpackb(body, raw=False)
            else:
                assert (method.exchange, method.routing_key, props.type) == (
                    topo.task_exchange,
                    "1.1",
                    "TaskEvent",
                )
                events.append(msgpack.unpackb(body, raw=False))
            if reply is not None and events and events[-1]["state"] in ("succeeded", "failed", "cancelled"):
                break
        channel.cancel()
        assert reply == {"ok": True, "task_id": {"problem_id": 1, "iteration_id": 1}, "schema_version": 1}
        assert [(e["state"], e["completed"]) for e in events] == [("running", None)] + [
            ("succeeded" if s is PIPELINE[-1] else "running", s.node) for s in PIPELINE
        ]
        assert events[0]["record"] is None
        for event, stage in zip(events[1:], PIPELINE, strict=True):
            record = from_wire(T.RECORD_TYPES[stage.kind], event["record"])  # a valid wire record
            assert getattr(record, "task_id", None) == T.TaskId(problem_id=1, iteration_id=1)
        deadline = time.monotonic() + 10
        while _routable(channel, topo.task_exchange, "1.1"):  # unbound after the final event's confirm
            assert time.monotonic() < deadline, "the watch queue is still bound to the finished task"
            connection.sleep(0.05)
    finally:
        if channel.is_open:
            channel.queue_delete(watch)
        connection.close()


@pytest.mark.integration
def test_raw_pika_example_reports_a_namespace_without_deployment(amqp_url: str) -> None:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    proc = _run_script(amqp_url, namespace, timeout=5)
    assert proc.returncode == 2, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert (
        f"queue '{namespace}.orchestrator.requests' does not exist: "
        f"is a deployment running in namespace '{namespace}'?"
    ) in proc.stderr
    _assert_queue_gone(amqp_url, _watch_queue_of(proc.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check or rewrite the generated sections of docs/wire-format.md"
    )
    parser.add_argument("--write", action="store_true", help="rewrite the document in place")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if args.write:
        if new != text:
            DOC.write_text(new, encoding="utf-8")
            print(f"rewrote {DOC}")
        else:
            print(f"{DOC} is up to date")
        return 0
    if new != text:
        print(f"{DOC} is stale; run with --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
