"""The activity log the dashboard shows is ``integration.models.AuditEvent`` (app label
``dashboard``); the dashboard keeps no other tables."""
