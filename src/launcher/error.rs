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

/// Adds what failed to a system error: `what: strerror`.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

/// Returns `ret`, or the error `what: strerror(errno)` when `ret` is -1.
pub fn check(ret: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    crate::sys::cvt(ret).context(what)
}

/// A C string of `s`, or an error naming it when it holds a NUL byte.
pub fn cstr(s: impl AsRef<std::ffi::OsStr>) -> Result<std::ffi::CString> {
    crate::sys::cstr(&s).context(|| format!("{:?}: contains a NUL byte", s.as_ref()))
}

/// Writes a small control file (cgroups, uid maps), naming it and the value on failure.
pub fn write_file(path: &std::path::Path, data: &str) -> Result<()> {
    std::fs::write(path, data)
        .map_err(|e| Error::io(format!("write {:?} to {}", data.trim(), path.display()), e))
}
