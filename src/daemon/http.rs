//! A small HTTP/1.1 server for `/metrics` and `/healthz`.
//!
//! Hand-written on std's TcpListener rather than a framework because what
//! matters here is control over abuse: at most [`MAX_CONNECTIONS`] served at
//! once (the next gets 503 at once), a deadline for the whole request head
//! (slow or idle clients are dropped), a bounded head size, 400 for
//! anything that is not a well-formed request line, one request per
//! connection. A thread per connection keeps one slow client from delaying
//! another's scrape.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Connections served at once; beyond it, 503.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to write a response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, content type, body.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Content-Type header.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Answers a request for `path` (GET or HEAD).
pub type Handler = Arc<dyn Fn(&str) -> Response + Send + Sync>;

/// Serves forever on `listener`.
pub fn serve(listener: TcpListener, handler: Handler) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(&mut stream, &Response::text(503, "too many connections\n"));
            continue;
        }
        let handler = handler.clone();
        let counter = active.clone();
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                handle(stream, &handler);
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // No thread: the stream was dropped, i.e. closed.
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn handle(mut stream: TcpStream, handler: &Handler) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let response = match read_head(&mut stream) {
        Ok(head) => match parse_request_line(&head) {
            Ok((method, path)) => {
                let mut r = handler(path);
                if method == "HEAD" {
                    r.body.clear();
                }
                r
            }
            Err(r) => r,
        },
        Err(None) => return, // timed out or closed: nothing to say
        Err(Some(r)) => r,
    };
    let _ = write_response(&mut stream, &response);
}

/// Reads until the blank line that ends the head, within the deadline.
fn read_head(stream: &mut TcpStream) -> Result<String, Option<Response>> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(None);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > MAX_HEAD {
            return Err(Some(Response::text(431, "request head too large\n")));
        }
    }
    String::from_utf8(head).map_err(|_| Some(Response::text(400, "bad request\n")))
}

/// `GET /metrics HTTP/1.1` → ("GET", "/metrics"); anything else is an error response.
pub fn parse_request_line(head: &str) -> Result<(&str, &str), Response> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::text(400, "bad request\n"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Response::text(400, "bad request\n"));
    }
    if method != "GET" && method != "HEAD" {
        return Err(Response::text(405, "only GET and HEAD\n"));
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok((method, path))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(r.body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok(),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line("HEAD /healthz?x=1 HTTP/1.0\r\n\r\n").ok(),
            Some(("HEAD", "/healthz"))
        );
        assert_eq!(
            parse_request_line("POST /metrics HTTP/1.1\r\n\r\n")
                .err()
                .map(|r| r.status),
            Some(405)
        );
        for garbage in [
            "\u{1}\u{2}\u{3}",
            "GET",
            "GET /metrics",
            "GET metrics HTTP/1.1",
            "GET / SPDY/3",
            "GET / HTTP/1.1 extra",
        ] {
            assert_eq!(
                parse_request_line(garbage).err().map(|r| r.status),
                Some(400),
                "{garbage:?}"
            );
        }
    }
}
