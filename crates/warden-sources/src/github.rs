//! GitHub REST: files at a ref, code search, commits and comparisons.
