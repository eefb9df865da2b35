//! Node tests.
