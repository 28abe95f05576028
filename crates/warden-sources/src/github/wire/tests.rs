//! Tests of the wire conversions.
