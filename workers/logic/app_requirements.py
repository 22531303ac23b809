"""APP_REQUIREMENTS: the application requirements of a problem, read offline and deterministically.

The work is done by :mod:`sustainml.workers.logic.requirements` (see its modules for the patterns,
units and precedence rules). Output:

- ``app_requirements``: normalised ``key=value`` strings sorted by key, e.g. ``deployment=edge``,
  ``max_latency_ms=50``, ``hardware=A100``, ``num_devices=8``; limits start with ``max_``/``min_``
  so ``common.parse_requirements`` reads them back as floats (ML_MODEL uses ``max_model_size_mb``
  and ``max_latency_ms``, HW_RESOURCES ``max_latency_ms``); the workload facts (``hardware``,
  ``num_devices``, ``region``, ``training_hours``, tokens, ...) are typed in ``extra_data``;
- ``region``: ``UserInput.geo_location_region`` when set wins over ``extra_data.region`` and the
  text;
- ``extra_data``: ``requirements`` (the same, typed), ``evidence`` (per key the text span it came
  from: ``text``, ``start``, ``end``, ``source`` = description | definition | extra_data, and the
  extra_data ``field``), ``contradictions`` and ``overridden`` (text findings an explicit extra_data
  value replaced).

Nothing found -> an empty list: no value is ever invented. An invalid explicit extra_data value
raises ``ValueError`` naming the field, which fails the task with that message.

Configuration request ``requirements``: the supported keys with units and descriptions, the
accepted extra_data keys and the conventions, as JSON. Anything else: the upstream failure reply.
"""

from __future__ import annotations

from sustainml.messages.types import AppRequirements, NodeStatus, RequestType, ResponseType, UserInput
from sustainml.workers.logic.common import reply, reply_unsupported
from sustainml.workers.logic.requirements import describe, extract


def task_callback(user_input: UserInput, node_status: NodeStatus, app_requirements: AppRequirements) -> None:
    found = extract(
        user_input.problem_short_description,
        user_input.problem_definition,
        user_input.get_extra(),
        region=user_input.geo_location_region,
    )
    app_requirements.app_requirements = found.strings()
    app_requirements.set_extra(found.extra())


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    if req.configuration.strip() == "requirements":
        reply(req, res, describe())
        return
    reply_unsupported(req, res)
