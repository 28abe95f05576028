//! A Prometheus-compatible HTTP API queried with PromQL.
