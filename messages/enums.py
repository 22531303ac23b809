"""The enums of the SustainML data model: members and order exactly as the seed IDL; the integer is
the wire value (an enum leaves a record as a plain int)."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """State of a node (``NodeStatus.node_status``)."""

    INACTIVE = 0
    INITIALIZING = 1
    IDLE = 2
    RUNNING = 3
    ERROR = 4
    TERMINATING = 5


class TaskStatus(IntEnum):
    """State of one task on a node (``NodeStatus.task_status``)."""

    WAITING = 0
    RUNNING = 1
    ERROR = 2
    SUCCEEDED = 3


class ErrorCode(IntEnum):
    """``NodeStatus.error_code`` and ``ResponseType.err_code``."""

    NO_ERROR = 0
    INTERNAL_ERROR = 1


class CmdNode(IntEnum):
    """Node lifecycle command (``NodeControl.cmd_node``)."""

    NO_CMD = 0
    CMD_START_NODE = 1
    CMD_STOP_NODE = 2
    CMD_RESET_NODE = 3
    CMD_TERMINATE_NODE = 4


class CmdTask(IntEnum):
    """Task command (``NodeControl.cmd_task``)."""

    NO_CMD = 0
    CMD_STOP_TASK = 1
    CMD_RESET_TASK = 2
    CMD_PREEMPT_TASK = 3
    CMD_TERMINATE_TASK = 4
