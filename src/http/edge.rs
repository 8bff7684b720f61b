//! What the edge reads of a connection's raw bytes that hyper does not pass on: a request head
//! that carries both `Content-Length` and `Transfer-Encoding` (hyper keeps the chunked reading and
//! drops `Content-Length` before the request reaches a handler).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose incoming bytes are scanned, line by line, for header blocks naming both
/// framing headers. A block is the lines up to an empty one; a body rarely holds lines that look
/// like both headers, and a false alarm only refuses a request.
pub struct Framing<S> {
    inner: S,
    ambiguous: Arc<AtomicBool>,
    /// The start of the line being read (enough to recognise a header name), and its length.
    line: Vec<u8>,
    line_len: usize,
    content_length: bool,
    transfer_encoding: bool,
}

/// The longest header name looked for, with its colon.
const NAME_BYTES: usize = "transfer-encoding:".len();

impl<S> Framing<S> {
    pub fn watch(inner: S) -> Framing<S> {
        Framing {
            inner,
            ambiguous: Arc::default(),
            line: Vec::with_capacity(NAME_BYTES),
            line_len: 0,
            content_length: false,
            transfer_encoding: false,
        }
    }

    /// Set when a request head with both headers was read; the request handler takes it.
    pub fn ambiguous(&self) -> Arc<AtomicBool> {
        self.ambiguous.clone()
    }

    /// Only the start of each line is looked at: `memchr` skips a body's bytes to the next
    /// newline (a byte-by-byte loop over every body was 2-3% of the server's CPU per event).
    fn scan(&mut self, mut bytes: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', bytes) {
            self.extend(&bytes[..end]);
            self.end_line();
            bytes = &bytes[end + 1..];
        }
        self.extend(bytes);
    }

    /// Adds part of the current line: its length, and its first bytes if the start is not full.
    fn extend(&mut self, part: &[u8]) {
        let room = NAME_BYTES - self.line.len();
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let blank = self.line_len == 0 || (self.line_len == 1 && self.line == b"\r");
        if blank {
            if self.content_length && self.transfer_encoding {
                self.ambiguous.store(true, Ordering::SeqCst);
            }
            self.content_length = false;
            self.transfer_encoding = false;
        } else {
            let named = |name: &[u8]| {
                self.line
                    .get(..name.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(name))
            };
            self.content_length |= named(b"content-length:");
            self.transfer_encoding |= named(b"transfer-encoding:");
        }
        self.line.clear();
        self.line_len = 0;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.scan(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(parts: &[&[u8]]) -> bool {
        let mut f = Framing::watch(());
        for p in parts {
            f.scan(p);
        }
        f.ambiguous.load(Ordering::SeqCst)
    }

    #[test]
    fn both_framing_headers_in_one_head_are_seen_whatever_the_reads() {
        let head: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        assert!(scanned(&[head]));
        let (a, b) = head.split_at(40);
        assert!(scanned(&[a, b]), "split across reads");
        assert!(!scanned(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        ]));
        assert!(!scanned(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ]));
        // Two requests on one connection, each with one of them: not ambiguous.
        assert!(!scanned(&[
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ]));
    }
}
