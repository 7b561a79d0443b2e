//! [`HeadErrorBody`]: the documented `{"detail": …}` body for the answers hyper writes by
//! itself, before any service sees the request.
//!
//! A request head larger than the connection's read buffer (or with more headers than hyper
//! parses) is answered by hyper with `431 Request Header Fields Too Large`, and a request
//! target too long with `414 URI Too Long`; both with an empty body, and hyper offers no hook
//! to change them. This writer sits between hyper and the socket and, when hyper writes one
//! of those bodiless heads as the last thing in a write, sends it with the JSON body instead.
//! Every other byte passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project! {
    /// A connection's byte stream with hyper's bodiless head errors given a JSON body.
    #[derive(Debug)]
    pub(crate) struct HeadErrorBody<S> {
        #[pin]
        inner: S,
        // The answer being written in place of hyper's: its bytes, how many are written, and
        // how many bytes of hyper's write it stands for.
        replacing: Option<(Vec<u8>, usize, usize)>,
    }
}

impl<S> HeadErrorBody<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

/// The heads hyper writes for a request it cannot parse, and the detail each gets.
const HEAD_ERRORS: [(&[u8], &str); 2] = [
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "the request's headers are larger than this server accepts",
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\n",
        "the request's target (path and query) is longer than this server accepts",
    ),
];

const NO_BODY: &[u8] = b"content-length: 0\r\n";

/// Where in `buf` a bodiless head error starts that ends `buf`, and the answer to send for
/// `buf[at..]`.
fn head_error(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    // Cheap for every other write: a head without a body ends the buffer only for bodiless
    // answers.
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    HEAD_ERRORS.iter().find_map(|(status_line, detail)| {
        let at = rfind(buf, status_line)?;
        let head = &buf[at..];
        // The head must be the last thing written and carry no body.
        if find(head, b"\r\n\r\n") != Some(head.len() - 4) {
            return None;
        }
        let length_at = find(head, NO_BODY)?;
        let body = serde_json::json!({ "detail": detail }).to_string();
        let mut answer = Vec::with_capacity(head.len() + body.len() + 48);
        answer.extend_from_slice(&head[..length_at]);
        answer.extend_from_slice(b"content-type: application/json\r\n");
        answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        answer.extend_from_slice(&head[length_at + NO_BODY.len()..]);
        answer.extend_from_slice(body.as_bytes());
        Some((at, answer))
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

impl<S: AsyncRead> AsyncRead for HeadErrorBody<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for HeadErrorBody<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        if this.replacing.is_none() {
            match head_error(buf) {
                // What comes before the error head goes first, as it is.
                Some((at, _)) if at > 0 => return this.inner.poll_write(cx, &buf[..at]),
                Some((_, answer)) => *this.replacing = Some((answer, 0, buf.len())),
                None => return this.inner.poll_write(cx, buf),
            }
        }
        while let Some((answer, written, stands_for)) = this.replacing.as_mut() {
            if *written == answer.len() {
                let stands_for = *stands_for;
                *this.replacing = None;
                return Poll::Ready(Ok(stands_for));
            }
            let n = ready!(this.inner.as_mut().poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let last = bufs.iter().rev().find(|b| !b.is_empty());
        if self.replacing.is_some() || last.is_some_and(|b| head_error(b).is_some()) {
            // One slice at a time, so the error head is seen whole (a short write is allowed).
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bodiless_head_error_at_the_end_is_replaced() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (at, answer) = head_error(head).unwrap();
        assert_eq!(at, 0);
        let text = String::from_utf8(answer).unwrap();
        let (head_part, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head_part.contains("content-type: application/json"),
            "{text}"
        );
        assert!(
            head_part.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
        assert!(head_part.contains("date: x"), "{text}");
        let detail: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(detail["detail"].as_str().unwrap().contains("headers"));

        let mut after = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
        after.extend_from_slice(head);
        assert_eq!(head_error(&after).map(|(at, _)| at), Some(27));
        let handled =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 2\r\n\r\n{}";
        assert!(head_error(handled).is_none());
        assert!(head_error(b"HTTP/1.1 204 No Content\r\n\r\n").is_none());
    }
}
