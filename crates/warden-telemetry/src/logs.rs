//! TODO(logs)
