"""agentsvc: the example service whose database dbtasks manages.

A small agent-management service: agents, their published versions, runs of a version, and
the events a run emits.
"""
