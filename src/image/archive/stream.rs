//! Compression of layer blobs, and the byte limit on what they expand to.

use std::io::{self, BufRead, Read, Write};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Tells the compression from the first bytes of a blob (a tar starts with
    /// a name, which is neither magic).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The media type suffix OCI uses (`+gzip`, `+zstd`, none).
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }
}

/// Fills `buf` from `r` until it holds at least `want` bytes or `r` ends.
pub(super) fn peek<R: BufRead>(r: &mut R, want: usize) -> io::Result<Vec<u8>> {
    // fill_buf may hand back fewer bytes than the magic even mid-stream; a
    // short blob is read whole here and chained back in front by the caller.
    let mut head = Vec::with_capacity(want);
    while head.len() < want {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(want - head.len());
        head.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    Ok(head)
}

/// The decompressed stream of a blob whose first bytes are `head`.
pub(super) fn decoder<'a, R: BufRead + 'a>(
    head: Vec<u8>,
    rest: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let compression = Compression::detect(&head);
    let whole = io::BufReader::new(io::Cursor::new(head).chain(rest));
    Ok(match compression {
        Compression::None => (compression, Box::new(whole)),
        Compression::Gzip => (
            compression,
            Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        ),
        Compression::Zstd => (
            compression,
            Box::new(zstd::stream::read::Decoder::with_buffer(whole)?),
        ),
    })
}

/// A reader that fails once more than `limit` bytes pass, and says so in `hit`
/// (the tar reader wraps errors, so the flag is what the caller checks).
pub(super) struct Limited<R> {
    pub inner: R,
    pub limit: u64,
    pub count: u64,
    pub hit: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the limit is enough to know it is passed.
        let room = self.limit.saturating_sub(self.count).saturating_add(1);
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.count += n as u64;
        if self.count > self.limit {
            self.hit = true;
            return Err(io::Error::other("layer past its size limit"));
        }
        Ok(n)
    }
}

/// The compressing end of a layer being written.
pub(super) enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, compression: Compression) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            // flate2 writes mtime 0 and no name: the same tar gives the same blob.
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// The uncompressed stream of a layer blob, whatever its compression (by magic):
/// what a docker-archive holds, and what a diff_id is the digest of.
pub fn decompress<'a, R: BufRead + 'a>(mut blob: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = peek(&mut blob, 4)?;
    Ok(decoder(head, blob)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::detect(ZSTD_MAGIC), Compression::Zstd);
        assert_eq!(Compression::detect(b"etc/passwd"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
    }

    #[test]
    fn limit_allows_exactly_the_limit() {
        let data = [1u8; 100];
        let mut ok = Limited {
            inner: &data[..],
            limit: 100,
            count: 0,
            hit: false,
        };
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 100);
        let mut over = Limited {
            inner: &data[..],
            limit: 99,
            count: 0,
            hit: false,
        };
        assert!(io::copy(&mut over, &mut io::sink()).is_err());
        assert!(over.hit);
    }
}
