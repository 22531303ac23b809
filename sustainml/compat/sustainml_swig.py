"""What upstream code imports from ``sustainml_swig``: the message types (accessor style) and the enums.

    from sustainml.compat.sustainml_swig import ErrorCode, HWConstraints   # was: from sustainml_swig ...

Enum members keep upstream's names but carry OUR values (the seed IDL's order, which differs from
upstream's for Status and TaskStatus): compare and assign by name, never by a literal integer.
Both spellings work: ``ErrorCode.NO_ERROR`` and the module-level ``NO_ERROR``.
"""

from __future__ import annotations

from typing import Final

from sustainml.messages import types as _t

from .records import (
    AppRequirements,
    CO2Footprint,
    GeoLocation,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeControl,
    NodeStatus,
    RequestType,
    ResponseType,
    TaskId,
    UserInput,
)


class Status:
    """``NodeStatus.node_status`` (upstream names, our values)."""

    NODE_INACTIVE: Final = _t.Status.INACTIVE
    NODE_ERROR: Final = _t.Status.ERROR
    NODE_IDLE: Final = _t.Status.IDLE
    NODE_INITIALIZING: Final = _t.Status.INITIALIZING
    NODE_RUNNING: Final = _t.Status.RUNNING
    NODE_TERMINATING: Final = _t.Status.TERMINATING


class TaskStatus:
    """``NodeStatus.task_status`` (upstream names, our values)."""

    TASK_WAITING: Final = _t.TaskStatus.WAITING
    TASK_ERROR: Final = _t.TaskStatus.ERROR
    TASK_RUNNING: Final = _t.TaskStatus.RUNNING
    TASK_SUCCEEDED: Final = _t.TaskStatus.SUCCEEDED


class ErrorCode:
    """``NodeStatus.error_code`` and ``ResponseType.err_code`` (same values upstream and here)."""

    NO_ERROR: Final = _t.ErrorCode.NO_ERROR
    INTERNAL_ERROR: Final = _t.ErrorCode.INTERNAL_ERROR


class CmdNode:
    """``NodeControl.cmd_node`` (upstream names, our values; same order)."""

    NO_CMD_NODE: Final = _t.CmdNode.NO_CMD
    START_NODE: Final = _t.CmdNode.CMD_START_NODE
    STOP_NODE: Final = _t.CmdNode.CMD_STOP_NODE
    RESET_NODE: Final = _t.CmdNode.CMD_RESET_NODE
    TERMINATE_NODE: Final = _t.CmdNode.CMD_TERMINATE_NODE


class CmdTask:
    """``NodeControl.cmd_task`` (upstream names, our values; same order)."""

    NO_CMD_TASK: Final = _t.CmdTask.NO_CMD
    STOP_TASK: Final = _t.CmdTask.CMD_STOP_TASK
    RESET_TASK: Final = _t.CmdTask.CMD_RESET_TASK
    PREEMPT_TASK: Final = _t.CmdTask.CMD_PREEMPT_TASK
    TERMINATE_TASK: Final = _t.CmdTask.CMD_TERMINATE_TASK


NODE_INACTIVE: Final = Status.NODE_INACTIVE
NODE_ERROR: Final = Status.NODE_ERROR
NODE_IDLE: Final = Status.NODE_IDLE
NODE_INITIALIZING: Final = Status.NODE_INITIALIZING
NODE_RUNNING: Final = Status.NODE_RUNNING
NODE_TERMINATING: Final = Status.NODE_TERMINATING
TASK_WAITING: Final = TaskStatus.TASK_WAITING
TASK_ERROR: Final = TaskStatus.TASK_ERROR
TASK_RUNNING: Final = TaskStatus.TASK_RUNNING
TASK_SUCCEEDED: Final = TaskStatus.TASK_SUCCEEDED
NO_ERROR: Final = ErrorCode.NO_ERROR
INTERNAL_ERROR: Final = ErrorCode.INTERNAL_ERROR
NO_CMD_NODE: Final = CmdNode.NO_CMD_NODE
START_NODE: Final = CmdNode.START_NODE
STOP_NODE: Final = CmdNode.STOP_NODE
RESET_NODE: Final = CmdNode.RESET_NODE
TERMINATE_NODE: Final = CmdNode.TERMINATE_NODE
NO_CMD_TASK: Final = CmdTask.NO_CMD_TASK
STOP_TASK: Final = CmdTask.STOP_TASK
RESET_TASK: Final = CmdTask.RESET_TASK
PREEMPT_TASK: Final = CmdTask.PREEMPT_TASK
TERMINATE_TASK: Final = CmdTask.TERMINATE_TASK

__all__ = [
    "INTERNAL_ERROR",
    "NODE_ERROR",
    "NODE_IDLE",
    "NODE_INACTIVE",
    "NODE_INITIALIZING",
    "NODE_RUNNING",
    "NODE_TERMINATING",
    "NO_CMD_NODE",
    "NO_CMD_TASK",
    "NO_ERROR",
    "PREEMPT_TASK",
    "RESET_NODE",
    "RESET_TASK",
    "START_NODE",
    "STOP_NODE",
    "STOP_TASK",
    "TASK_ERROR",
    "TASK_RUNNING",
    "TASK_SUCCEEDED",
    "TASK_WAITING",
    "TERMINATE_NODE",
    "TERMINATE_TASK",
    "AppRequirements",
    "CO2Footprint",
    "CmdNode",
    "CmdTask",
    "ErrorCode",
    "GeoLocation",
    "HWConstraints",
    "HWResource",
    "MLModel",
    "MLModelMetadata",
    "NodeControl",
    "NodeStatus",
    "RequestType",
    "ResponseType",
    "Status",
    "TaskId",
    "TaskStatus",
    "UserInput",
]
