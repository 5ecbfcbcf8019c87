//! The union filesystem.
