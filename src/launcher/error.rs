//! One error type for the launcher: a one-line message and the exit code strata returns.

use std::fmt;

/// Exit code for "strata itself failed" (as Docker and Podman do).
pub const EXIT_LAUNCHER: i32 = 125;
/// The command exists but could not be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// The command was not found in the container.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub msg: String,
    pub code: i32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: EXIT_LAUNCHER,
        }
    }

    /// Bad input from the user (same exit code; kept separate for readability).
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::new(msg)
    }

    pub fn with_code(msg: impl Into<String>, code: i32) -> Error {
        Error {
            msg: msg.into(),
            code,
        }
    }

    /// `what: <strerror of errno>`.
    pub fn last_os(what: impl fmt::Display) -> Error {
        Error::io(what, std::io::Error::last_os_error())
    }

    /// `what: <error>`, without Rust's " (os error N)" suffix.
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> Error {
        let text = e.to_string();
        let text = match text.rfind(" (os error ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        Error::new(format!("{what}: {text}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}
