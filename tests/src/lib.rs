//! Test host support.
