//! TODO(pprof)
