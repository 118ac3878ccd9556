"""The service's operations on its data (what its HTTP handlers would call)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agentsvc.models import Agent, AgentVersion, Run, RunEvent, RunStatus


def register_agent(session: Session, slug: str, name: str, owner_email: str) -> Agent:
    agent = Agent(slug=slug, name=name, owner_email=owner_email)
    session.add(agent)
    session.flush()
    return agent


def publish_version(
    session: Session, agent: Agent, image: str, config: dict[str, Any] | None = None
) -> AgentVersion:
    latest = session.scalar(
        select(func.max(AgentVersion.version)).where(AgentVersion.agent_id == agent.id)
    )
    version = AgentVersion(
        agent=agent,
        version=(latest or 0) + 1,
        image=image,
        config=config or {},
        published_at=datetime.now(UTC),
    )
    session.add(version)
    session.flush()
    return version


def start_run(session: Session, version: AgentVersion, payload: dict[str, Any]) -> Run:
    run = Run(
        agent_version=version, input=payload, status=RunStatus.running, started_at=datetime.now(UTC)
    )
    session.add(run)
    session.flush()
    record_event(session, run, "started", {"input_keys": sorted(payload)})
    return run


def record_event(session: Session, run: Run, kind: str, payload: dict[str, Any]) -> RunEvent:
    seq = session.scalar(select(func.count()).where(RunEvent.run_id == run.id)) or 0
    event = RunEvent(run=run, seq=seq + 1, kind=kind, payload=payload)
    session.add(event)
    session.flush()
    return event


def finish_run(session: Session, run: Run, status: RunStatus) -> Run:
    run.status = status
    run.finished_at = datetime.now(UTC)
    record_event(session, run, status.value, {})
    return run
