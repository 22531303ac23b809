"""The pipeline topology: the one place that says which stages exist, in which order, what each
consumes and produces, and what every exchange and queue is called.

Declaration (``declare_all``), the workers, the orchestrator, the CLI and docs/wire-format.md all
derive from this module.

Pipeline (each arrow is an exchange; routing key ``<problem_id>.<iteration_id>``)::

    UserInput -> ML_MODEL_METADATA -> APP_REQUIREMENTS -> HW_CONSTRAINTS -> ML_MODEL
              -> HW_RESOURCES -> CARBON_FOOTPRINT

Every stage message carries the task's context (all records produced so far plus the baselines
attached by the orchestrator), so a stage never joins inputs from several queues and any number
of replicas can compete on one durable queue.

A failed output is routed ``failed.<problem_id>.<iteration_id>`` (``failed_routing_key``): the
stage queues bind ``#`` and still get it, the orchestrator's durable results queue binds the five
intermediate exchanges with ``failed.#`` and the final one with ``#`` (so it receives each task's
outcome once), and its progress queue binds the five with ``*.*`` (every successful output, none
of the failed ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from sustainml.config import Settings
from sustainml.messages.kinds import (
    APP_REQUIREMENTS,
    BASELINE_SUFFIX,
    CARBON_FOOTPRINT,
    HW_CONSTRAINTS,
    HW_RESOURCES,
    ML_MODEL,
    ML_MODEL_METADATA,
    RECORD_KINDS,
    USER_INPUT,
    NodeID,
)
from sustainml.transport.base import Binding, ExchangeSpec, QueueSpec, QueueType, Transport


@dataclass(frozen=True)
class Stage:
    """One node of the pipeline."""

    node: str  # upstream node name, e.g. "ML_MODEL_METADATA"
    node_id: NodeID
    kind: str  # record kind it produces
    input_kind: str  # record kind whose exchange it consumes (the stage before it)
    callback_inputs: tuple[str, ...]  # record kinds handed to the callback, in upstream order

    @property
    def slug(self) -> str:
        return self.kind


PIPELINE: tuple[Stage, ...] = (
    Stage("ML_MODEL_METADATA", NodeID.ML_MODEL_METADATA, ML_MODEL_METADATA, USER_INPUT, (USER_INPUT,)),
    Stage("APP_REQUIREMENTS", NodeID.APP_REQUIREMENTS, APP_REQUIREMENTS, ML_MODEL_METADATA, (USER_INPUT,)),
    Stage("HW_CONSTRAINTS", NodeID.HW_CONSTRAINTS, HW_CONSTRAINTS, APP_REQUIREMENTS, (USER_INPUT,)),
    Stage(
        "ML_MODEL",
        NodeID.ML_MODEL,
        ML_MODEL,
        HW_CONSTRAINTS,
        (
            ML_MODEL_METADATA,
            APP_REQUIREMENTS,
            HW_CONSTRAINTS,
            ML_MODEL + BASELINE_SUFFIX,
            HW_RESOURCES + BASELINE_SUFFIX,
            CARBON_FOOTPRINT + BASELINE_SUFFIX,
        ),
    ),
    Stage(
        "HW_RESOURCES",
        NodeID.HW_RESOURCES,
        HW_RESOURCES,
        ML_MODEL,
        (ML_MODEL, APP_REQUIREMENTS, HW_CONSTRAINTS),
    ),
    Stage(
        "CARBON_FOOTPRINT",
        NodeID.CARBON_FOOTPRINT,
        CARBON_FOOTPRINT,
        HW_RESOURCES,
        (ML_MODEL, USER_INPUT, HW_RESOURCES),
    ),
)

STAGES_BY_NODE: dict[str, Stage] = {s.node: s for s in PIPELINE}
STAGES_BY_KIND: dict[str, Stage] = {s.kind: s for s in PIPELINE}
STAGES_BY_ID: dict[int, Stage] = {int(s.node_id): s for s in PIPELINE}
FINAL_STAGE: Stage = PIPELINE[-1]
NODE_NAMES: tuple[str, ...] = tuple(s.node for s in PIPELINE)
ALL_NODES_KEY = "all"  # control routing key that reaches every node
FAILED_PREFIX = "failed."  # routing-key prefix of a failed stage output
# Progress is best effort: a message the orchestrator has not taken within this time (it was
# down) is stale; the outcome still arrives on the durable results queue.
PROGRESS_TTL_MS = 60_000
PROGRESS_MAX_LENGTH = 100_000


def failed_routing_key(task_key: str) -> str:
    """Routing key of a failed output of task ``p.i``: ``failed.p.i``."""
    return FAILED_PREFIX + task_key


def task_key_of_route(routing_key: str) -> str:
    """The ``p.i`` of a stage message's routing key (``p.i`` or ``failed.p.i``)."""
    return routing_key[len(FAILED_PREFIX) :] if routing_key.startswith(FAILED_PREFIX) else routing_key


def resolve_stage(name: str) -> Stage:
    """Find a stage by upstream name (ML_MODEL), kind (ml_model), NodeID integer or the CLI's
    dashed form (ml-model); raises ``KeyError`` listing the valid names."""
    key = name.strip()
    if key.isdigit() and int(key) in STAGES_BY_ID:
        return STAGES_BY_ID[int(key)]
    norm = key.replace("-", "_")
    if norm.upper() in STAGES_BY_NODE:
        return STAGES_BY_NODE[norm.upper()]
    if norm.lower() in STAGES_BY_KIND:
        return STAGES_BY_KIND[norm.lower()]
    aliases = {
        "CARBON_TRACKER": "CARBON_FOOTPRINT",
        "HW_PROVIDER": "HW_RESOURCES",
        "ML_MODEL_PROVIDER": "ML_MODEL",
    }
    if norm.upper() in aliases:
        return STAGES_BY_NODE[aliases[norm.upper()]]
    raise KeyError(f"unknown node {name!r}; expected one of: {', '.join(s.kind for s in PIPELINE)}")


class Topology:
    """Names of every exchange and queue of one deployment (namespace)."""

    def __init__(
        self,
        namespace: str = "sustainml",
        queue_type: QueueType = "classic",
        delivery_limit: int = 20,
        *,
        max_attempts: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        self.ns = namespace
        self.queue_type: QueueType = queue_type
        # Quorum queues count redeliveries; past the limit the broker dead-letters the message, so
        # a message that crashes every replica cannot loop forever.
        self.delivery_limit = delivery_limit
        # A callback that raises is retried through delay queues (see retry_queue_spec) until
        # max_attempts, then dead-lettered.
        self.max_attempts = max(1, max_attempts)
        self.retry_backoff = max(0.0, retry_backoff)

    @classmethod
    def of(cls, settings: Settings) -> Topology:
        return cls(
            settings.namespace,
            settings.queue_type,
            settings.delivery_limit,
            max_attempts=settings.max_attempts,
            retry_backoff=settings.retry_backoff,
        )

    # -- exchanges --------------------------------------------------------------------------
    def record_exchange(self, kind: str) -> str:
        """Topic exchange carrying records of ``kind`` (``user_input`` is the pipeline's entry)."""
        return f"{self.ns}.{kind}"

    @property
    def task_exchange(self) -> str:
        """Topic: the orchestrator's task state changes (routing key ``p.i``), after they are stored."""
        return f"{self.ns}.tasks"

    @property
    def status_exchange(self) -> str:
        return f"{self.ns}.status"  # fanout: NodeStatus heartbeats and per-task events

    @property
    def control_exchange(self) -> str:
        return f"{self.ns}.control"  # topic: NodeControl, routing key = node name or "all"

    @property
    def config_exchange(self) -> str:
        return f"{self.ns}.config"  # direct: RequestType, routing key = node name

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.ns}.dlx"  # direct: routing key = the queue the message was rejected from

    @property
    def rpc_exchange(self) -> str:
        """Default exchange: replies and orchestrator requests go straight to a queue by name."""
        return ""

    # -- queues -------------------------------------------------------------------------------
    def stage_queue(self, stage: Stage) -> str:
        return f"{self.ns}.stage.{stage.slug}"

    def config_queue(self, stage: Stage) -> str:
        return f"{self.ns}.config.{stage.slug}"

    def dead_letter_queue(self, queue: str) -> str:
        return f"{queue}.dlq"

    @property
    def unattributed_route(self) -> str:
        """Dead-letter routing key of messages refused because their sender could not be proven
        to hold the role needed (forged NodeControl and NodeStatus); they wait in its DLQ."""
        return f"{self.ns}.unattributed"

    def retry_delay_ms(self, attempt: int) -> int:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` failed:
        ``retry_backoff * 2**(attempt-1)`` seconds (1 s, 2 s, 4 s ... by default)."""
        return max(1, round(self.retry_backoff * 1000 * 2.0 ** (attempt - 1)))

    def retry_queue(self, stage: Stage, attempt: int) -> str:
        """Delay queue a failed attempt ``attempt`` waits in. Named by its delay, so a changed
        SUSTAINML_RETRY_BACKOFF declares new queues instead of clashing with the old arguments."""
        return f"{self.ns}.retry.{stage.slug}.{self.retry_delay_ms(attempt)}"

    @property
    def orchestrator_results_queue(self) -> str:
        return f"{self.ns}.orchestrator.results"

    @property
    def orchestrator_progress_queue(self) -> str:
        """Intermediate successful outputs, for task events and ``current_stage`` (best effort)."""
        return f"{self.ns}.orchestrator.progress"

    @property
    def orchestrator_requests_queue(self) -> str:
        """Submissions and operator requests (RPC) to the orchestrator."""
        return f"{self.ns}.orchestrator.requests"

    def private_queue(self, purpose: str, owner_id: str) -> str:
        """A per-process queue (control, status monitor, RPC replies, task watchers). Durable with
        x-expires, so it disappears shortly after its owner does (no transient queues: 4.x-clean)."""
        return f"{self.ns}.{purpose}.{owner_id}"

    @staticmethod
    def routing_key(problem_id: int, iteration_id: int) -> str:
        return f"{problem_id}.{iteration_id}"

    # -- specs ----------------------------------------------------------------------------------
    def exchanges(self) -> list[ExchangeSpec]:
        specs = [ExchangeSpec(self.record_exchange(k), "topic") for k in RECORD_KINDS]
        specs += [
            ExchangeSpec(self.task_exchange, "topic"),
            ExchangeSpec(self.status_exchange, "fanout"),
            ExchangeSpec(self.control_exchange, "topic"),
            ExchangeSpec(self.config_exchange, "direct"),
            ExchangeSpec(self.dead_letter_exchange, "direct"),
        ]
        return specs

    def _durable(self, name: str, bindings: tuple[Binding, ...]) -> QueueSpec:
        return QueueSpec(
            name,
            bindings,
            queue_type=self.queue_type,
            dead_letter_exchange=self.dead_letter_exchange,
            dead_letter_routing_key=name,
            delivery_limit=self.delivery_limit if self.queue_type == "quorum" else None,
        )

    def dead_letter_queue_spec(self, queue: str) -> QueueSpec:
        dlq = self.dead_letter_queue(queue)
        return QueueSpec(dlq, (Binding(self.dead_letter_exchange, queue),), queue_type=self.queue_type)

    def stage_queue_spec(self, stage: Stage) -> QueueSpec:
        return self._durable(self.stage_queue(stage), (Binding(self.record_exchange(stage.input_kind), "#"),))

    def config_queue_spec(self, stage: Stage) -> QueueSpec:
        # Requests carry an expiration equal to the caller's timeout; no dead-lettering of RPC.
        return QueueSpec(
            self.config_queue(stage), (Binding(self.config_exchange, stage.node),), queue_type=self.queue_type
        )

    def orchestrator_results_spec(self) -> QueueSpec:
        """Each task's outcome, once: the final stage's outputs and the failed outputs of the others."""
        return self._durable(
            self.orchestrator_results_queue,
            tuple(
                Binding(self.record_exchange(s.kind), "#" if s is FINAL_STAGE else FAILED_PREFIX + "#")
                for s in PIPELINE
            ),
        )

    def orchestrator_progress_spec(self) -> QueueSpec:
        """The successful outputs of the five intermediate stages (``*.*`` leaves out the
        ``failed.p.i`` keys). Nothing is stored from it, so no dead-lettering; a bounded,
        expiring backlog when no orchestrator runs."""
        return QueueSpec(
            self.orchestrator_progress_queue,
            tuple(Binding(self.record_exchange(s.kind), "*.*") for s in PIPELINE if s is not FINAL_STAGE),
            queue_type=self.queue_type,
            message_ttl_ms=PROGRESS_TTL_MS,
            max_length=PROGRESS_MAX_LENGTH,
        )

    def orchestrator_requests_spec(self) -> QueueSpec:
        # RPC requests expire with their caller's timeout; an expired request is dropped, not
        # dead-lettered (its caller has already reported the timeout). Malformed requests are
        # answered with an error, never rejected.
        return QueueSpec(self.orchestrator_requests_queue, (), queue_type=self.queue_type)

    def durable_queues(self) -> list[QueueSpec]:
        """Every shared queue of the deployment, dead-letter queues included."""
        work = [self.stage_queue_spec(s) for s in PIPELINE]
        work.append(self.orchestrator_results_spec())
        specs = [*work, self.orchestrator_progress_spec(), self.orchestrator_requests_spec()]
        specs += [self.dead_letter_queue_spec(q.name) for q in work]
        specs.append(self.dead_letter_queue_spec(self.unattributed_route))
        specs += [self.config_queue_spec(s) for s in PIPELINE]
        return specs

    def retry_queue_spec(self, stage: Stage, attempt: int) -> QueueSpec:
        """A delay queue: no consumer; each message waits ``x-message-ttl`` and is then
        dead-lettered through the default exchange straight back into the stage queue (not via the
        record exchange, which would also copy it to the orchestrator's results queue). One queue
        per delay: with a single queue and per-message expirations a short delay would wait behind
        a long one (classic queues only expire at the head)."""
        return QueueSpec(
            self.retry_queue(stage, attempt),
            (),
            dead_letter_exchange="",
            dead_letter_routing_key=self.stage_queue(stage),
            message_ttl_ms=self.retry_delay_ms(attempt),
            queue_type=self.queue_type,
            dead_letter_at_least_once=True,
        )

    def retry_queues(self) -> list[QueueSpec]:
        """The delay queues of every stage, one per retry level (``max_attempts - 1`` each)."""
        return [self.retry_queue_spec(s, a) for s in PIPELINE for a in range(1, self.max_attempts)]

    def private_queue_spec(
        self, purpose: str, owner_id: str, bindings: tuple[Binding, ...] = (), *, expires_ms: int = 60_000
    ) -> QueueSpec:
        return QueueSpec(self.private_queue(purpose, owner_id), bindings, expires_ms=expires_ms)


def declare_all(transport: Transport, topology: Topology) -> None:
    """Declare every exchange and shared queue (idempotent). Workers and the orchestrator call it on
    start, so any of them can come up first."""
    for ex in topology.exchanges():
        transport.declare_exchange(ex)
    for q in topology.durable_queues():
        transport.declare_queue(q)
    for q in topology.retry_queues():  # after the stage queues they dead-letter into
        transport.declare_queue(q)


def delete_all(transport: Transport, topology: Topology) -> None:
    """Remove every shared queue and exchange of the namespace (tests, teardown of a deployment).
    Private queues expire on their own (x-expires)."""
    for q in [*topology.durable_queues(), *topology.retry_queues()]:
        transport.delete_queue(q.name)
    for ex in topology.exchanges():
        transport.delete_exchange(ex.name)
