"""Messages to the nodes themselves: NodeControl commands and configuration RPCs. Shared by the
orchestrator and the remote client; kept apart from ``core`` so a client (and every process that
only talks to nodes) does not load the TaskDB and SQLAlchemy."""

from __future__ import annotations

import json

from sustainml.attribution import Attribution
from sustainml.messages import (
    SCHEMA_VERSION,
    CmdNode,
    CmdTask,
    ErrorCode,
    NodeControl,
    RequestType,
    ResponseType,
    TaskId,
    decode,
    encode,
)
from sustainml.messages import headers as H
from sustainml.rpc import RpcClient, RpcError
from sustainml.topology import ALL_NODES_KEY, Stage, Topology, resolve_stage
from sustainml.transport.base import Transport

PUBLISH_TIMEOUT = 30.0  # seconds a control (or orchestrator) publish may wait for its confirm


def publish_control(
    transport: Transport,
    topology: Topology,
    target: str,
    cmd_node: CmdNode,
    cmd_task: CmdTask,
    task_id: TaskId | None,
    source: str,
    attribution: Attribution,
) -> None:
    """Publish a NodeControl to every replica of one node type, or of all (``target="all"``),
    signed by ``attribution`` (nodes obey only the orchestrator and operator roles)."""
    target_node = ALL_NODES_KEY if target == ALL_NODES_KEY else resolve_stage(target).node
    cmd = NodeControl(
        cmd_node=cmd_node, cmd_task=cmd_task, target_node=target_node, task_id=task_id, source_node=source
    )
    msg = H.build_message(
        encode(cmd), type_name="NodeControl", app_id=source, schema_version=SCHEMA_VERSION, persistent=False
    )
    msg = attribution.sign(msg)
    transport.publish(topology.control_exchange, target_node, msg, mandatory=False).result(PUBLISH_TIMEOUT)


def config_call(
    rpc: RpcClient, topology: Topology, stage: Stage, configuration: str, transaction_id: int, timeout: float
) -> ResponseType:
    """One configuration RPC to ``stage`` (shared by the orchestrator and the remote client)."""
    req = RequestType(node_id=int(stage.node_id), transaction_id=transaction_id, configuration=configuration)
    try:
        answer = rpc.call(
            topology.config_exchange,
            stage.node,
            encode(req),
            timeout=timeout,
            type="RequestType",
            target=stage.node,
        )
    except RpcError as exc:
        # Same shape as a node's own failure, so callers (REST, GUI) handle one case.
        return ResponseType(
            node_id=int(stage.node_id),
            transaction_id=transaction_id,
            success=False,
            err_code=ErrorCode.INTERNAL_ERROR,
            configuration=json.dumps({"error": str(exc)}),
        )
    return decode(answer.body, ResponseType)
