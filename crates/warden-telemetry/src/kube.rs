//! TODO(kube)
