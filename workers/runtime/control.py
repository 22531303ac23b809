"""A replica's command side: NodeControl commands on the control exchange (pause/resume, reset,
terminate, cancel a task) and configuration requests (RPC) on the node type's config queue,
answered by the node's ``service_callback``."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from sustainml.attribution import CONTROL_ROLES, Unattributed
from sustainml.deadletter import dead_letter
from sustainml.messages import (
    CmdNode,
    CmdTask,
    ErrorCode,
    MessageError,
    NodeControl,
    RequestType,
    ResponseType,
    TaskId,
    decode,
    encode,
)
from sustainml.rpc import ForeignQueue, check_own_queue, reply
from sustainml.topology import ALL_NODES_KEY
from sustainml.transport.base import Delivery

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger(__name__)

CANCELLED_TASKS_REMEMBERED = 10_000
_CANCEL_COMMANDS = (CmdTask.CMD_STOP_TASK, CmdTask.CMD_TERMINATE_TASK, CmdTask.CMD_PREEMPT_TASK)


class CancelledTasks:
    """The tasks a replica was told to cancel (the most recent ones), thread-safe."""

    def __init__(self, remembered: int = CANCELLED_TASKS_REMEMBERED) -> None:
        self._lock = threading.Lock()
        self._tasks: OrderedDict[TaskId, None] = OrderedDict()
        self._remembered = remembered

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            return task_id in self._tasks

    def add(self, task_id: TaskId) -> None:
        with self._lock:
            self._tasks[task_id] = None
            while len(self._tasks) > self._remembered:
                self._tasks.popitem(last=False)

    def discard(self, task_id: TaskId) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()


def on_control(node: Node, delivery: Delivery) -> None:
    """Obey a NodeControl addressed to ``node`` (by name, to all nodes, or to its private queue)
    from the orchestrator or an operator; anything else goes to the unattributed DLQ."""
    try:
        node.attribution.require(delivery.message, CONTROL_ROLES, "NodeControl")
    except Unattributed as exc:
        dead_letter(
            node.transport,
            node.topology,
            delivery,
            f"{node.node_name} NodeControl {exc}",
            by=node.node_name,
            route=node.topology.unattributed_route,
        )
        return
    delivery.ack()  # control messages are commands, not work: nothing to redo on failure
    try:
        cmd = decode(delivery.message.body, NodeControl)
    except MessageError as exc:
        log.warning("%s: ignoring invalid control message: %s", node.node_name, exc)
        return
    if cmd.target_node not in ("", node.node_name, ALL_NODES_KEY):
        return
    if cmd.cmd_task in _CANCEL_COMMANDS:
        if cmd.task_id is not None:
            node.cancel_task(cmd.task_id)
    elif cmd.cmd_task == CmdTask.CMD_RESET_TASK and cmd.task_id is not None:
        node.reset_task(cmd.task_id)
    if cmd.cmd_node == CmdNode.CMD_STOP_NODE:
        node.pause()
    elif cmd.cmd_node == CmdNode.CMD_START_NODE:
        node.resume()
    elif cmd.cmd_node == CmdNode.CMD_RESET_NODE:
        node.reset()
    elif cmd.cmd_node == CmdNode.CMD_TERMINATE_NODE:
        node.stop()


def on_config(node: Node, delivery: Delivery) -> None:
    """Answer a configuration request with the node's ``service_callback`` (a failure reply when
    it has none, the request is invalid or the callback raises)."""
    delivery.ack()  # answered (or explained) exactly once below; a retry is the caller's call
    reply_to = delivery.message.reply_to
    if reply_to:
        try:  # never run a request whose answer would be written into another namespace
            check_own_queue(node.topology, reply_to, "reply_to", direct_reply=True)
        except ForeignQueue as exc:
            log.warning("%s: configuration request refused: %s", node.node_name, exc)
            return
    try:
        req = decode(delivery.message.body, RequestType)
    except MessageError as exc:
        res = ResponseType(
            node_id=int(node.STAGE.node_id),
            transaction_id=0,
            success=False,
            err_code=ErrorCode.INTERNAL_ERROR,
            configuration=json.dumps({"error": f"invalid configuration request: {exc}"}),
        )
        reply(node.transport, delivery, encode(res), topology=node.topology, type="ResponseType")
        return
    res = ResponseType(node_id=req.node_id, transaction_id=req.transaction_id, success=True)
    try:
        if node.service_callback is None:
            res.success = False
            res.err_code = ErrorCode.INTERNAL_ERROR
            res.configuration = json.dumps(
                {"error": f"Unsupported configuration request: {req.configuration}"}
            )
        else:
            node.service_callback(req, res)
    except Exception as exc:  # user code: report it to the requester instead of hanging it
        log.exception("%s: configuration callback failed", node.node_name)
        res = ResponseType(
            node_id=req.node_id,
            transaction_id=req.transaction_id,
            success=False,
            err_code=ErrorCode.INTERNAL_ERROR,
            configuration=json.dumps({"error": f"{type(exc).__name__}: {exc}"}),
        )
    reply(node.transport, delivery, encode(res), topology=node.topology, type="ResponseType")
