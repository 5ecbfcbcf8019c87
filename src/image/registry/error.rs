//! The one error type of the registry client: a kind the CLI maps to its exit code
//! and advice, and a one-line message naming the registry, repository, reference or
//! blob it is about and the reason.

use std::fmt;

/// What went wrong, coarsely: the CLI's choices follow from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image reference (or a platform string) does not parse.
    BadReference,
    /// No HTTP answer from the registry or its token server: connection refused, DNS,
    /// TLS handshake or certificate verification, time-out.
    Unreachable,
    /// 401/403 and no credentials were sent (none given, none in auth.json).
    CredentialsMissing,
    /// 401/403 although credentials were sent: wrong, or not allowed this access.
    CredentialsWrong,
    /// 404 for a manifest: unknown tag, digest or repository.
    ManifestNotFound,
    /// 404 for a blob.
    BlobNotFound,
    /// The index (manifest list) has no manifest for the requested platform.
    PlatformNotFound,
    /// Content does not match its digest (or declared size).
    DigestMismatch,
    /// The registry answered something this client cannot use: an unexpected status,
    /// a malformed manifest or header, an unsupported media type.
    Protocol,
    /// A local file: the partial download, a certificate directory, an upload source.
    Io,
    /// The local configuration: an auth file or certificate that does not parse.
    Config,
}

#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message (the same as Display).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub(crate) fn err(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}
