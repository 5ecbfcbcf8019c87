//! Tar layers in and out (OCI image-spec "layer" format).
//!
//! PLACEHOLDER until the image-archive branch lands: the API the store codes against.

use super::digest::Digest;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    Trusted,
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Real,
    Recorded,
}

pub struct UnpackOptions {
    pub marks: Marks,
    pub ownership: Ownership,
    pub max_size: u64,
}

pub struct Unpacked {
    pub diff_id: Digest,
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    pub size: u64,
    pub files: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub struct WriteOptions {
    pub marks: Marks,
    pub ownership: Ownership,
    pub compression: Compression,
}

pub struct Written {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Hostile,
    Corrupt,
    TooLarge,
    NoSpace,
    Io,
    Unsupported,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub fn unpack(_blob: impl Read, _dest: &Path, _opts: &UnpackOptions) -> Result<Unpacked, Error> {
    Err(Error {
        kind: ErrorKind::Unsupported,
        msg: "unpack: not yet".into(),
    })
}

pub fn write_layer(
    _upper: &Path,
    _lowers: &[PathBuf],
    _opts: &WriteOptions,
    _out: impl Write,
) -> Result<Written, Error> {
    Err(Error {
        kind: ErrorKind::Unsupported,
        msg: "write_layer: not yet".into(),
    })
}

/// A reader of the uncompressed stream, whatever the compression (by magic).
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>, Error> {
    Ok(Box::new(r))
}
