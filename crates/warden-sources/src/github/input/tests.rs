//! Tests of input checks.
