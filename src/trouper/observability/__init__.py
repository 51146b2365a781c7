"""Observability: OpenTelemetry tracing (``_tracing``); see docs/observability.md."""
