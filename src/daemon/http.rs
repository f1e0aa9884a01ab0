//! A small HTTP/1.1 server for `/metrics` and `/healthz`.
//!
//! Hand-written on std's TcpListener rather than a framework because what
//! matters here is control over abuse (hyper needs an async runtime;
//! tiny_http has no head deadline or bound):
//!
//! - One thread holds every connection that has not yet sent a whole
//!   request head and waits on all of them with `poll(2)`. An idle or
//!   trickling client costs a descriptor and a small buffer, never a thread
//!   or a slot that a scrape needs. At most [`MAX_PENDING`] are held; past
//!   that the oldest is dropped, so a flood of idle connections cannot lock
//!   out a probe, which sends its request as soon as it connects.
//! - Each client has [`HEAD_DEADLINE`] from connect to finish its head, of
//!   at most [`MAX_HEAD`] bytes (431); anything but a well-formed request
//!   line is 400. One request per connection.
//! - A complete request goes to a responder thread, at most
//!   [`MAX_RESPONDERS`] at once; past that, 503 at once.
//! - After a response the write side is shut down and whatever the client
//!   still sends is read and thrown away for up to [`LINGER`]: closing a
//!   socket with unread bytes sends a reset, which makes the client's kernel
//!   discard the end of the response it had not read yet.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Connections held while they send their request head; past it the
/// oldest is dropped.
pub const MAX_PENDING: usize = crate::runtime::HTTP_MAX_PENDING;
/// Requests answered at once; past it, 503.
pub const MAX_RESPONDERS: usize = crate::runtime::HTTP_MAX_RESPONDERS;
/// Time a client has to send its request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to write a response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long what a client sends after its request is read and discarded
/// before the connection is closed.
pub const LINGER: Duration = Duration::from_secs(1);

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

/// A connection whose request head is not complete yet.
struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    deadline: Instant,
}

/// What reading a pending connection gave.
enum Progress {
    /// More to come.
    Partial,
    /// The head is complete.
    Head,
    /// Closed, failed, or too large (the response to send, if any).
    Done(Option<Response>),
}

/// Serves forever on `listener`.
pub fn serve(listener: TcpListener, handler: Handler) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let responders = Arc::new(AtomicUsize::new(0));
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        let now = Instant::now();
        // Expired heads: dropped without a word (what was sent is read).
        pending.retain(|p| p.deadline > now);
        let ready = wait(&listener, &pending, now);
        // Newest last, so indexes stay valid while removing from the back.
        for i in (0..pending.len()).rev() {
            if !ready.get(i + 1).copied().unwrap_or(false) {
                continue;
            }
            match read_more(&mut pending[i]) {
                Progress::Partial => {}
                Progress::Head => {
                    if let Some(p) = pending.remove(i) {
                        dispatch(p, &handler, &responders);
                    }
                }
                Progress::Done(answer) => {
                    if let Some(p) = pending.remove(i)
                        && let Some(r) = answer
                    {
                        respond_and_close(p.stream, &r);
                    }
                }
            }
        }
        if ready.first().copied().unwrap_or(false) {
            accept_all(&listener, &mut pending);
        }
    }
}

/// Waits until the listener or a pending connection is readable, or the
/// nearest deadline; returns readiness, the listener first.
fn wait(listener: &TcpListener, pending: &VecDeque<Pending>, now: Instant) -> Vec<bool> {
    let next = pending
        .iter()
        .map(|p| p.deadline)
        .min()
        .map_or(HEAD_DEADLINE, |d| d.saturating_duration_since(now));
    let timeout =
        PollTimeout::try_from(next.as_millis().min(1000) as u64 + 1).unwrap_or(PollTimeout::MAX);
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(pending.len() + 1);
    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
    fds.extend(
        pending
            .iter()
            .map(|p| PollFd::new(p.stream.as_fd(), PollFlags::POLLIN)),
    );
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Vec::new(),
        Err(_) => {
            // Not expected (every fd is open and counted); never spin on it.
            std::thread::sleep(Duration::from_millis(10));
            return Vec::new();
        }
    }
    fds.iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect()
}

/// Accepts every waiting connection; past [`MAX_PENDING`], or when out of
/// descriptors, the oldest pending one makes room.
fn accept_all(listener: &TcpListener, pending: &mut VecDeque<Pending>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if pending.len() >= MAX_PENDING {
                    pending.pop_front();
                }
                pending.push_back(Pending {
                    stream,
                    head: Vec::with_capacity(512),
                    deadline: Instant::now() + HEAD_DEADLINE,
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                if pending.pop_front().is_none() {
                    // Nothing of ours to close: let the responders finish.
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Reads what a pending connection has sent.
fn read_more(p: &mut Pending) -> Progress {
    let mut chunk = [0u8; 1024];
    loop {
        match p.stream.read(&mut chunk) {
            Ok(0) => return Progress::Done(None),
            Ok(n) => p.head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Partial,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Progress::Done(None),
        }
        if head_complete(&p.head) {
            return Progress::Head;
        }
        if p.head.len() > MAX_HEAD {
            return Progress::Done(Some(Response::text(431, "request head too large\n")));
        }
    }
}

fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// Hands a complete request to a responder thread, or answers 503 when
/// [`MAX_RESPONDERS`] are busy.
fn dispatch(p: Pending, handler: &Handler, responders: &Arc<AtomicUsize>) {
    if responders.fetch_add(1, Ordering::SeqCst) >= MAX_RESPONDERS {
        responders.fetch_sub(1, Ordering::SeqCst);
        respond_and_close(
            p.stream,
            &Response::text(503, "too many requests at once\n"),
        );
        return;
    }
    let handler = handler.clone();
    let counter = responders.clone();
    let spawned = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let response = answer(&p.head, &handler);
            let _ = p.stream.set_nonblocking(false);
            let _ = p.stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let mut stream = p.stream;
            let written = write_response(&mut stream, &response);
            counter.fetch_sub(1, Ordering::SeqCst);
            if written.is_ok() {
                linger_close(stream);
            }
        });
    if spawned.is_err() {
        responders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The response to a complete request head.
fn answer(head: &[u8], handler: &Handler) -> Response {
    let Ok(head) = std::str::from_utf8(head) else {
        return Response::text(400, "bad request\n");
    };
    match parse_request_line(head) {
        Ok((method, path)) => {
            let mut r = handler(path);
            if method == "HEAD" {
                r.body.clear();
            }
            r
        }
        Err(r) => r,
    }
}

/// Answers a short error from the accepting thread without blocking it
/// (the answer fits in the socket's buffer), then closes on a thread of
/// its own so the close is clean.
fn respond_and_close(mut stream: TcpStream, r: &Response) {
    let _ = stream.set_nonblocking(true);
    if write_response(&mut stream, r).is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("http-close".into())
        .spawn(move || linger_close(stream));
}

/// Ends a connection with a FIN: shut down our side, then read and discard
/// what the client still sends, until it closes or [`LINGER`] passes.
/// At most [`MAX_RESPONDERS`] at once; past it the socket is closed at once.
fn linger_close(mut stream: TcpStream) {
    static LINGERING: AtomicUsize = AtomicUsize::new(0);
    let _ = stream.shutdown(Shutdown::Write);
    if LINGERING.fetch_add(1, Ordering::SeqCst) >= MAX_RESPONDERS {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    drain(&mut stream);
    LINGERING.fetch_sub(1, Ordering::SeqCst);
}

fn drain(stream: &mut TcpStream) {
    let _ = stream.set_nonblocking(false);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut discarded = 0usize;
    while discarded < 1 << 20 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
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
