"""Execution traces: an agent objective a strong tier solved, kept so that the
next objective with a similar goal replays it without a model (learner-follower).

* :mod:`~swarmd.agent.traces.model` — the trace, its steps and typed validations;
* :mod:`~swarmd.agent.traces.params` — a goal's parameters and representation, slots;
* :mod:`~swarmd.agent.traces.learning` — a learner run becomes a trace;
* :mod:`~swarmd.agent.traces.checking` — one validation of a replayed step;
* :mod:`~swarmd.agent.traces.store` — the ``traces`` table: matching, updates.

The names importers use are re-exported here.  Workers read traces; the
daemon writes the events workers report.  Design: docs/design.md.
"""

from swarmd.agent.traces.checking import check
from swarmd.agent.traces.learning import NotLearnable, learn
from swarmd.agent.traces.model import (EMBEDDING, REPRESENTATION, ExitCode, FileExists, JsonSchema, OutputContains,
                                       OutputMatches, Param, Step, StoredTrace, Trace, TraceError, Validation,
                                       signature_of)
from swarmd.agent.traces.params import (MIN_EMBEDDING_SIMILARITY, extract_params, fill, goal_representation,
                                        goal_similarity, quote_span, represent, similarity, slot, template_of)
from swarmd.agent.traces.store import (NEW_CONFIDENCE, Match, TraceStore, apply_trace_event,
                                       updated_confidence)

__all__ = ["EMBEDDING", "MIN_EMBEDDING_SIMILARITY", "NEW_CONFIDENCE", "REPRESENTATION", "ExitCode", "FileExists",
           "JsonSchema", "Match", "NotLearnable", "OutputContains", "OutputMatches", "Param", "Step", "StoredTrace",
           "Trace", "TraceError", "TraceStore", "Validation", "apply_trace_event", "check", "extract_params", "fill",
           "goal_representation", "goal_similarity", "learn", "quote_span", "represent", "signature_of",
           "similarity", "slot", "template_of", "updated_confidence"]
