"""The service functions: what the API, the dashboard, schedules and the agent interface call.

Each takes the `Principal` who asks and enforces their role (``principal.can``) and site scope (a
device outside their sites does not exist for them: NotFound, never a refusal with details).
A refused call changes nothing and sends nothing to a device.
"""

from avctl.server.alerts.engine import AlertInfo
from avctl.server.service.alerts import ack_alert, list_alerts, list_rules, open_counts, silence_alert
from avctl.server.service.audit import query_audit
from avctl.server.service.devices import (
    EventItem,
    Page,
    device,
    events,
    find_device,
    fleet_snapshot,
    fleet_views,
    history,
    list_devices,
)
from avctl.server.service.errors import Conflict, Forbidden, NotFound, ServiceError
from avctl.server.service.jobs import (
    ActionResult,
    JobDetail,
    job,
    jobs_running,
    list_jobs,
    resume_job,
    run_action,
    start_job,
)

__all__ = [
    "ActionResult", "AlertInfo", "Conflict", "EventItem", "Forbidden", "JobDetail", "NotFound", "Page",
    "ServiceError", "ack_alert", "device", "events", "find_device", "fleet_snapshot", "fleet_views", "history", "job",
    "jobs_running", "list_alerts", "list_devices", "list_jobs", "list_rules", "open_counts", "query_audit",
    "resume_job", "run_action", "silence_alert", "start_job",
]
