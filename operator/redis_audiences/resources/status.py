"""Status models of both kinds: what the operator writes, what readers see.

They are declared in the CRDs (so the API server keeps every field) and are
the one place that says what ``kubectl get`` and Argo CD can read. Status
stays small: the history keeps five runs, samples of bad keys ten.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Syncing", "Synced", "Failed", "Blocked", "Suspended"]
Trigger = Literal["Schedule", "SpecChange", "Manual", "Startup"]
Outcome = Literal["Succeeded", "Failed", "Blocked"]


class StatusModel(BaseModel):
    """Base of status models: camelCase names; unknown fields are kept out."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """A condition in the Kubernetes shape (read by Argo CD, Flux, kstatus)."""

    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why.")
    message: str = Field(description="One line for humans.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        None, description="The spec generation the condition describes."
    )


class RunSummary(StatusModel):
    """One sync run, as kept in ``lastRun`` and ``history``."""

    id: str = Field(description="Run id, also written to the metadata hash.")
    trigger: Trigger = Field(description="Schedule, SpecChange, Manual or Startup.")
    mode: Literal["Full", "Delta"] = Field(description="The mode that ran.")
    dry_run: bool = Field(description="True when nothing was written.")
    started_at: str = Field(description="Start (RFC 3339).")
    finished_at: str = Field(description="End (RFC 3339).")
    duration_seconds: float = Field(description="Wall-clock duration in seconds.")
    source_rows: int = Field(description="Rows read from the source.")
    added: int = Field(description="Membership Sets that gained the audience.")
    removed: int = Field(description="Membership Sets that lost the audience.")
    unchanged: int = Field(description="Members that already had the audience.")
    skipped: int = Field(description="Rows with a null, empty or over-long key, and wrong types.")
    outcome: Outcome = Field(description="Succeeded, Failed or Blocked.")
    message: str = Field(description="One line: why it failed or what is worth knowing.")


class AppliedAudience(StatusModel):
    """Where an activation has written its audience (what cleanup removes)."""

    audience_name: str | None = Field(None, description="The audience name written.")
    destination_name: str | None = Field(None, description="The RedisDestination written to.")


class RedisAudienceActivationStatus(StatusModel):
    """Health and last run of one activation."""

    observed_generation: int | None = Field(None, description="Spec generation of the last run.")
    phase: Phase | None = Field(
        None, description="Pending, Syncing, Synced, Failed, Blocked or Suspended."
    )
    members: int | None = Field(None, description="Members after the last successful run.")
    last_sync_time: str | None = Field(None, description="End of the last run (RFC 3339).")
    last_successful_sync_time: str | None = Field(
        None, description="End of the last successful run (RFC 3339)."
    )
    next_sync_time: str | None = Field(None, description="Next scheduled run (RFC 3339).")
    last_handled_sync_request: str | None = Field(
        None, description="Last value of audiences.dev/sync-requested-at acted on."
    )
    last_run: RunSummary | None = Field(None, description="The last run.")
    history: list[RunSummary] | None = Field(
        None, max_length=5, description="The last five runs, newest first."
    )
    wrong_type_sample: list[str] | None = Field(
        None, max_length=10, description="Up to ten keys skipped for holding another type."
    )
    applied_audience: AppliedAudience | None = Field(
        None,
        description=(
            "The audience and destination this activation has written; deletion and "
            "renames remove the audience from there."
        ),
    )
    conditions: list[Condition] | None = Field(
        None, description="Ready; Reconciling during a run; Stalled when invalid or blocked."
    )


class RedisDestinationStatus(StatusModel):
    """Reachability of one Redis deployment."""

    observed_generation: int | None = Field(None, description="Spec generation last checked.")
    redis_version: str | None = Field(None, description="Version reported by the server.")
    last_checked_time: str | None = Field(None, description="Last check (RFC 3339).")
    conditions: list[Condition] | None = Field(
        None, description="Ready when a PING and a permission check pass."
    )
