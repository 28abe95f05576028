//! TODO(traces)
