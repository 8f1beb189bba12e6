//! handful
