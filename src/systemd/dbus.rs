//! The least of D-Bus cgmgr needs: one method call to systemd and its reply.
//!
//! Hand-written after measuring the alternative: zbus 5 (the maintained
//! pure-Rust crate, 85 crates to build) panics in its reader thread on the
//! replies of systemd's private socket, whose sender field is the well-known
//! name `org.freedesktop.systemd1` where zbus insists on a unique name; the
//! call then never returns. The wire format needed here is small and fixed:
//! little-endian marshalling of strings, object paths, signatures, `u32`,
//! booleans, arrays, structs and variants, the `EXTERNAL` authentication and
//! the message header (D-Bus specification, "Message Protocol").

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A D-Bus failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The peer answered something this client does not understand.
    #[error("{0}")]
    Protocol(String),
    /// The peer answered the call with a D-Bus error.
    #[error("{name}: {message}")]
    Remote {
        /// The error name (`org.freedesktop.systemd1.UnitExists`...).
        name: String,
        /// Its human-readable text.
        message: String,
    },
}

/// systemd's private D-Bus socket (peer-to-peer, for root).
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus, for everyone else.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// A connection to systemd: its private socket (root), else the system
/// bus, as `systemctl` does; both errors when neither answers.
pub fn connect_systemd() -> Result<Connection, (DbusError, DbusError)> {
    let private = match Connection::peer(Path::new(PRIVATE_SOCKET)) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    Connection::bus(Path::new(SYSTEM_BUS)).map_err(|system| (private, system))
}

/// A connection to this user's own systemd manager (`user@UID.service`):
/// its private socket `$XDG_RUNTIME_DIR/systemd/private`, else the user bus
/// `$XDG_RUNTIME_DIR/bus`, as `systemctl --user` does; both errors (each
/// naming its socket) when neither answers.
pub fn connect_user_manager() -> Result<Connection, (DbusError, DbusError)> {
    let runtime = crate::runtime::record::user_runtime_dir(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("XDG_RUNTIME_DIR"),
    );
    let private = match Connection::peer(&runtime.join("systemd/private")) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    Connection::bus(&runtime.join("bus")).map_err(|bus| (private, bus))
}

/// Whether the unit `unit` (a `.service` or `.scope`) of the manager at the
/// other end of `conn` has `Delegate=yes`: its `Delegate` property, read
/// over D-Bus. systemd's user managers mark no delegation on the unit's
/// cgroup (no `user.delegate`, and an unprivileged manager cannot write
/// `trusted.*`), so this is the only way a user's cgmgr can tell.
pub fn unit_delegates(conn: &mut Connection, unit: &str) -> Result<bool, DbusError> {
    let interface = if unit.ends_with(".scope") {
        "org.freedesktop.systemd1.Scope"
    } else {
        "org.freedesktop.systemd1.Service"
    };
    let path = conn
        .call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "GetUnit",
            &[Arg::Str(unit.to_string())],
        )?
        .first_string()
        .ok_or_else(|| DbusError::Protocol(format!("GetUnit({unit}) gave no object path")))?;
    conn.call(
        "org.freedesktop.systemd1",
        &path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &[Arg::Str(interface.into()), Arg::Str("Delegate".into())],
    )?
    .first_variant_bool()
    .ok_or_else(|| DbusError::Protocol(format!("the Delegate property of {unit} is not a boolean")))
}

/// The running systemd's version (the manager's `Version` property, e.g.
/// `252.38-1~deb12u1`): what PID 1 is, not what `systemctl --version`
/// on disk says.
/// `within` bounds the wait for the answer: under some sandboxing
/// (`ProtectHostname=` or `ProtectKernelLogs=` in systemd 252) PID 1 never
/// answers this call.
pub fn manager_version(within: Duration) -> Result<String, DbusError> {
    let mut conn = connect_systemd().map_err(|(private, system)| {
        DbusError::Protocol(format!(
            "cannot reach systemd ({PRIVATE_SOCKET}: {private}; {SYSTEM_BUS}: {system})"
        ))
    })?;
    conn.timeout = within;
    let reply = conn.call(
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.DBus.Properties",
        "Get",
        &[
            Arg::Str("org.freedesktop.systemd1.Manager".into()),
            Arg::Str("Version".into()),
        ],
    )?;
    reply
        .first_variant_string()
        .ok_or_else(|| DbusError::Protocol("the Version property is not a string".into()))
}

/// How long a reply may take (TCG VMs are slow).
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A marshalled argument or property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `s`
    Str(String),
    /// `b`
    Bool(bool),
    /// `au`
    U32Array(Vec<u32>),
    /// `a(sv)`: properties, name and value.
    Properties(Vec<(String, Arg)>),
    /// `a(sa(sv))`: auxiliary units (always empty here).
    AuxUnits(Vec<(String, Vec<(String, Arg)>)>),
}

impl Arg {
    fn signature(&self) -> &'static str {
        match self {
            Arg::Str(_) => "s",
            Arg::Bool(_) => "b",
            Arg::U32Array(_) => "au",
            Arg::Properties(_) => "a(sv)",
            Arg::AuxUnits(_) => "a(sa(sv))",
        }
    }
}

/// A connection to a D-Bus peer or bus, authenticated.
#[derive(Debug)]
pub struct Connection {
    stream: BufReader<UnixStream>,
    serial: u32,
    /// Calls on a bus need a destination and a `Hello` first; calls on a
    /// peer-to-peer socket (systemd's private one) must do neither.
    bus: bool,
    /// How long one call may wait for its reply.
    timeout: Duration,
}

impl Connection {
    /// Connects to systemd's private socket: peer-to-peer, no `Hello`.
    pub fn peer(path: &Path) -> Result<Connection, DbusError> {
        Self::open(path, false)
    }

    /// Connects to a message bus (the system bus) and says `Hello`.
    pub fn bus(path: &Path) -> Result<Connection, DbusError> {
        let mut c = Self::open(path, true)?;
        c.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )?;
        Ok(c)
    }

    fn open(path: &Path, bus: bool) -> Result<Connection, DbusError> {
        let io = |what: &str| {
            let what = format!("{what} {}", path.display());
            move |source| DbusError::Io { what, source }
        };
        let stream = UnixStream::connect(path).map_err(io("connecting to"))?;
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(io("setting a timeout on"))?;
        let mut stream = BufReader::new(stream);
        authenticate(&mut stream).map_err(io("authenticating to"))?;
        Ok(Connection {
            stream,
            serial: 0,
            bus,
            timeout: REPLY_TIMEOUT,
        })
    }

    /// Calls `member` and returns its reply (`destination` is used on a
    /// bus only).
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Arg],
    ) -> Result<Reply, DbusError> {
        self.serial += 1;
        let destination = self.bus.then_some(destination);
        let message = method_call(self.serial, destination, path, interface, member, args);
        self.stream
            .get_mut()
            .write_all(&message)
            .map_err(|source| DbusError::Io {
                what: format!("sending {interface}.{member}"),
                source,
            })?;
        // One deadline for the whole call, and a bound on what is skipped:
        // a peer that keeps sending other messages cannot hold us forever.
        let deadline = std::time::Instant::now() + self.timeout;
        for _ in 0..MAX_SKIPPED {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let reply = self
                .stream
                .get_ref()
                .set_read_timeout(Some(left))
                .and_then(|()| read_message(&mut self.stream))
                .map_err(|source| DbusError::Io {
                    what: format!("waiting for the reply to {interface}.{member}"),
                    source,
                })?;
            let reply = parse_reply(&reply)?;
            // Only a METHOD_RETURN or an ERROR answering this call counts;
            // signals (NameAcquired after Hello) are skipped.
            if !matches!(reply.kind, 2 | 3) || reply.reply_serial != Some(self.serial) {
                continue;
            }
            if let Some(name) = reply.error_name.clone() {
                let message = reply.first_string().unwrap_or_default();
                return Err(DbusError::Remote { name, message });
            }
            return Ok(reply);
        }
        Err(DbusError::Protocol(format!(
            "no reply to {interface}.{member} within {}s",
            self.timeout.as_secs()
        )))
    }
}

/// Messages other than our reply tolerated during one call.
const MAX_SKIPPED: usize = 64;

/// `EXTERNAL` authentication with our uid, as every local client does.
fn authenticate(stream: &mut BufReader<UnixStream>) -> std::io::Result<()> {
    let uid = nix::unistd::getuid().as_raw().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    stream
        .get_mut()
        .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
    // A line of the authentication protocol is short ("OK <32 hex>").
    let mut line = Vec::new();
    stream.take(512).read_until(b'\n', &mut line)?;
    if !line.starts_with(b"OK ") || !line.ends_with(b"\n") {
        let shown: String = String::from_utf8_lossy(&line).chars().take(80).collect();
        return Err(std::io::Error::other(format!(
            "EXTERNAL authentication refused: {shown:?}"
        )));
    }
    stream.get_mut().write_all(b"BEGIN\r\n")
}

/// Little-endian marshalling into a buffer whose offset 0 is 8-aligned.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.0.len().is_multiple_of(n) {
            self.0.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(len32(s.len()));
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    /// An array: the length, the padding of the first element (present
    /// even when the array is empty), then the elements.
    fn array(&mut self, element_align: usize, elements: impl FnOnce(&mut Writer)) {
        self.align(4);
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        self.align(element_align);
        let start = self.0.len();
        elements(self);
        let len = len32(self.0.len() - start);
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn arg(&mut self, arg: &Arg) {
        match arg {
            Arg::Str(s) => self.str(s),
            Arg::Bool(b) => self.u32(u32::from(*b)),
            Arg::U32Array(v) => self.array(4, |w| v.iter().for_each(|&x| w.u32(x))),
            Arg::Properties(props) => self.array(8, |w| w.properties(props)),
            Arg::AuxUnits(units) => self.array(8, |w| {
                for (name, props) in units {
                    w.align(8);
                    w.str(name);
                    w.array(8, |w| w.properties(props));
                }
            }),
        }
    }
    fn properties(&mut self, props: &[(String, Arg)]) {
        for (name, value) in props {
            self.align(8);
            self.str(name);
            self.signature(value.signature());
            self.arg(value);
        }
    }
    /// A header field: `(y v)` with a string-like value.
    fn field(&mut self, code: u8, signature: &str, value: &str) {
        self.align(8);
        self.u8(code);
        self.signature(signature);
        if signature == "g" {
            self.signature(value);
        } else {
            self.str(value);
        }
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A complete `METHOD_CALL` message.
fn method_call(
    serial: u32,
    destination: Option<&str>,
    path: &str,
    interface: &str,
    member: &str,
    args: &[Arg],
) -> Vec<u8> {
    let mut body = Writer::default();
    args.iter().for_each(|a| body.arg(a));
    let signature: String = args.iter().map(Arg::signature).collect();
    let mut m = Writer::default();
    m.0.extend_from_slice(&[b'l', 1, 0, 1]);
    m.u32(len32(body.0.len()));
    m.u32(serial);
    m.array(8, |w| {
        w.field(1, "o", path);
        w.field(2, "s", interface);
        w.field(3, "s", member);
        if let Some(d) = destination {
            w.field(6, "s", d);
        }
        if !signature.is_empty() {
            w.field(8, "g", &signature);
        }
    });
    m.align(8);
    m.0.extend_from_slice(&body.0);
    m.0
}

/// Reads one whole message: the fixed header says how long the rest is.
fn read_message(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed)?;
    let little = fixed[0] == b'l';
    let u32_at = |i: usize| {
        let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let (body, fields) = (u32_at(4) as usize, u32_at(12) as usize);
    let total = 16usize
        .checked_add(fields)
        .map(|h| h.next_multiple_of(8))
        .and_then(|h| h.checked_add(body))
        .unwrap_or(usize::MAX);
    if total > 1 << 26 {
        return Err(std::io::Error::other(format!(
            "a {total}-byte message is beyond what systemd sends"
        )));
    }
    let mut message = fixed.to_vec();
    message.resize(total, 0);
    stream.read_exact(&mut message[16..])?;
    Ok(message)
}

/// What cgmgr reads of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message type: 2 METHOD_RETURN, 3 ERROR, 4 SIGNAL.
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    signature: String,
    body: Vec<u8>,
    little: bool,
}

impl Reply {
    /// The first argument when it is a string or an object path (an error's
    /// message, `StartTransientUnit`'s job path).
    pub fn first_string(&self) -> Option<String> {
        if !matches!(self.signature.chars().next(), Some('s' | 'o')) {
            return None;
        }
        let mut r = Reader {
            buf: &self.body,
            pos: 0,
            little: self.little,
        };
        r.string().ok()
    }

    /// The first argument when it is a variant holding a boolean (the
    /// reply of `org.freedesktop.DBus.Properties.Get` for a `b` property).
    pub fn first_variant_bool(&self) -> Option<bool> {
        Some(self.first_variant("b")?.u32().ok()? != 0)
    }

    /// The first argument when it is a variant holding a string (the reply
    /// of `org.freedesktop.DBus.Properties.Get` for a string property).
    pub fn first_variant_string(&self) -> Option<String> {
        self.first_variant("s")?.string().ok()
    }

    /// A reader at the value of the first argument, when it is a variant
    /// of `signature`.
    fn first_variant(&self, signature: &str) -> Option<Reader<'_>> {
        if !self.signature.starts_with('v') {
            return None;
        }
        let mut r = Reader {
            buf: &self.body,
            pos: 0,
            little: self.little,
        };
        (r.signature().ok()? == signature).then_some(r)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
}

impl Reader<'_> {
    fn bad(&self, what: &str) -> DbusError {
        DbusError::Protocol(format!("malformed reply: {what} at byte {}", self.pos))
    }
    fn align(&mut self, n: usize) {
        self.pos = self.pos.next_multiple_of(n);
    }
    fn u8(&mut self) -> Result<u8, DbusError> {
        let v = *self.buf.get(self.pos).ok_or_else(|| self.bad("end"))?;
        self.pos += 1;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, DbusError> {
        self.align(4);
        let b: [u8; 4] = self
            .buf
            .get(self.pos..self.pos + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.bad("a u32 past the end"))?;
        self.pos += 4;
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn bytes(&mut self, len: usize) -> Result<String, DbusError> {
        let s = self
            .buf
            .get(self.pos..self.pos + len)
            .ok_or_else(|| self.bad("a string past the end"))?;
        let s = String::from_utf8(s.to_vec()).map_err(|_| self.bad("a string not UTF-8"))?;
        self.pos += len + 1;
        Ok(s)
    }
    fn string(&mut self) -> Result<String, DbusError> {
        let len = self.u32()? as usize;
        self.bytes(len)
    }
    fn signature(&mut self) -> Result<String, DbusError> {
        let len = usize::from(self.u8()?);
        self.bytes(len)
    }
}

/// Parses a message's header fields; other messages than replies pass too
/// (with no reply serial) so that the caller can skip them.
fn parse_reply(message: &[u8]) -> Result<Reply, DbusError> {
    let little = message.first() == Some(&b'l');
    let mut r = Reader {
        buf: message,
        pos: 12,
        little,
    };
    let fields_len = r.u32()? as usize;
    let fields_end = 16 + fields_len;
    let (mut reply_serial, mut error_name, mut signature) = (None, None, String::new());
    while r.pos < fields_end {
        r.align(8);
        let code = r.u8()?;
        let sig = r.signature()?;
        match sig.as_str() {
            "s" | "o" => {
                let v = r.string()?;
                if code == 4 {
                    error_name = Some(v);
                }
            }
            "g" => {
                let v = r.signature()?;
                if code == 8 {
                    signature = v;
                }
            }
            "u" => {
                let v = r.u32()?;
                if code == 5 {
                    reply_serial = Some(v);
                }
            }
            other => return Err(r.bad(&format!("a header field of type {other:?}"))),
        }
    }
    let body_start = fields_end.next_multiple_of(8);
    Ok(Reply {
        kind: message.get(1).copied().unwrap_or(0),
        reply_serial,
        error_name,
        signature,
        body: message.get(body_start..).unwrap_or_default().to_vec(),
        little,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout rules of the specification this call depends on: strings
    /// aligned to 4 with a NUL, structs (and an array's first element, even
    /// in an empty array) aligned to 8, variants as signature + value. The
    /// real proof is systemd accepting the call in the systemd VM test.
    #[test]
    fn start_transient_unit_layout() {
        let args = [
            Arg::Str("x.scope".into()),
            Arg::Str("fail".into()),
            Arg::Properties(vec![
                ("Delegate".into(), Arg::Bool(true)),
                ("PIDs".into(), Arg::U32Array(vec![7])),
            ]),
            Arg::AuxUnits(vec![]),
        ];
        let m = method_call(
            3,
            None,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &args,
        );
        assert_eq!(&m[..4], b"l\x01\x00\x01");
        assert_eq!(
            u32::from_le_bytes(m[8..12].try_into().unwrap()),
            3,
            "serial"
        );
        let fields = u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize;
        let body_start = (16 + fields).next_multiple_of(8);
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(m.len(), body_start + body_len);
        let body = &m[body_start..];
        // "x.scope": length 7, bytes, NUL; "fail" aligned to 4.
        assert_eq!(&body[..12], b"\x07\x00\x00\x00x.scope\x00");
        assert_eq!(&body[12..21], b"\x04\x00\x00\x00fail\x00");
        // a(sv): length at 24 (aligned 4), elements from 32 (aligned 8).
        let props_len = u32::from_le_bytes(body[24..28].try_into().unwrap()) as usize;
        assert_eq!(&body[28..32], &[0, 0, 0, 0], "padding to the first struct");
        assert_eq!(&body[32..48], b"\x08\x00\x00\x00Delegate\x00\x01b\x00");
        assert_eq!(&body[48..52], &[1, 0, 0, 0], "true, aligned to 4");
        assert_eq!(&body[52..56], &[0, 0, 0, 0], "padding to the next struct");
        // Second struct at 56 (aligned 8): "PIDs", variant "au", [7].
        assert_eq!(&body[56..65], b"\x04\x00\x00\x00PIDs\x00");
        assert_eq!(&body[65..69], b"\x02au\x00");
        assert_eq!(&body[72..80], &[4, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(props_len, 80 - 32);
        // The empty a(sa(sv)): length 0, padded to 8 for its first element.
        assert_eq!(&body[80..84], &[0, 0, 0, 0]);
        assert_eq!(body.len(), 88);
        let header = parse_reply(&m).unwrap();
        assert_eq!(header.signature, "ssa(sv)a(sa(sv))");
        assert_eq!(header.reply_serial, None);
    }

    /// A message of `kind` answering `serial`, with string-like header
    /// `fields` (code, signature, value) and one string as its body.
    fn message(kind: u8, serial: u32, fields: &[(u8, &str, &str)], body_text: &str) -> Vec<u8> {
        let mut body = Writer::default();
        body.str(body_text);
        message_with(kind, serial, fields, body)
    }

    /// [`message`] with a body of any shape.
    fn message_with(kind: u8, serial: u32, fields: &[(u8, &str, &str)], body: Writer) -> Vec<u8> {
        let mut w = Writer::default();
        w.0.extend_from_slice(&[b'l', kind, 1, 1]);
        w.u32(len32(body.0.len()));
        w.u32(99);
        w.array(8, |w| {
            w.align(8);
            w.u8(5); // REPLY_SERIAL
            w.signature("u");
            w.u32(serial);
            for (code, signature, value) in fields {
                w.field(*code, signature, value);
            }
        });
        w.align(8);
        w.0.extend_from_slice(&body.0);
        w.0
    }

    #[test]
    fn an_error_reply_is_read_whole() {
        // An ERROR as systemd sends it, with the sender zbus choked on: a
        // well-known name.
        let sent = message(
            3,
            3,
            &[
                (4, "s", "org.freedesktop.systemd1.UnitExists"),
                (8, "g", "s"),
                (7, "s", "org.freedesktop.systemd1"),
            ],
            "Unit x.scope already exists.",
        );
        let message = read_message(&mut std::io::Cursor::new(sent.clone())).unwrap();
        assert_eq!(message, sent);
        let reply = parse_reply(&message).unwrap();
        assert_eq!(reply.reply_serial, Some(3));
        assert_eq!(
            reply.error_name.as_deref(),
            Some("org.freedesktop.systemd1.UnitExists")
        );
        assert_eq!(
            reply.first_string().as_deref(),
            Some("Unit x.scope already exists.")
        );
    }

    #[test]
    fn a_string_property_is_read_from_its_variant() {
        // systemd's answer to Properties.Get("org.freedesktop.systemd1.Manager", "Version").
        let mut body = Writer::default();
        body.signature("s");
        body.str("252.38-1~deb12u1");
        let sent = message_with(2, 4, &[(8, "g", "v")], body);
        let reply = parse_reply(&read_message(&mut std::io::Cursor::new(sent)).unwrap()).unwrap();
        assert_eq!(
            reply.first_variant_string().as_deref(),
            Some("252.38-1~deb12u1")
        );
        assert_eq!(reply.first_string(), None, "a variant is no plain string");
        // A variant holding another type, and a plain string, are not one.
        let mut body = Writer::default();
        body.signature("u");
        body.u32(7);
        let sent = message_with(2, 4, &[(8, "g", "v")], body);
        assert_eq!(parse_reply(&sent).unwrap().first_variant_string(), None);
        assert_eq!(
            parse_reply(&answer(2)).unwrap().first_variant_string(),
            None
        );
    }

    /// A message of `kind` answering serial 1, as a hostile peer would send.
    fn answer(kind: u8) -> Vec<u8> {
        message(
            kind,
            1,
            &[(8, "g", "o")],
            "/org/freedesktop/systemd1/job/forged",
        )
    }

    /// A fake peer: authenticates, then sends `messages` and keeps the
    /// connection open until the client is done.
    fn fake_peer(messages: Vec<Vec<u8>>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
                .unwrap();
            for m in messages {
                if s.write_all(&m).is_err() {
                    return;
                }
            }
            let _ = s.read(&mut buf);
            std::thread::sleep(Duration::from_secs(30));
        });
        (dir, path)
    }

    #[test]
    fn a_forged_signal_is_not_a_reply_and_a_flood_ends_the_call() {
        let mut flood = vec![answer(4)];
        flood.extend(std::iter::repeat_n(answer(4), 100));
        let (_dir, path) = fake_peer(flood);
        let mut c = Connection::peer(&path).unwrap();
        let start = std::time::Instant::now();
        let e = c.call("d", "/p", "i.f", "M", &[]).unwrap_err().to_string();
        assert!(e.contains("no reply to i.f.M"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_method_return_is_the_reply() {
        let (_dir, path) = fake_peer(vec![answer(4), answer(2)]);
        let mut c = Connection::peer(&path).unwrap();
        let reply = c.call("d", "/p", "i.f", "M", &[]).unwrap();
        assert_eq!(
            reply.first_string().as_deref(),
            Some("/org/freedesktop/systemd1/job/forged")
        );
    }

    #[test]
    fn an_endless_authentication_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let junk = vec![b'A'; 1 << 20];
            while s.write_all(&junk).is_ok() {}
        });
        let e = Connection::peer(&path).unwrap_err().to_string();
        assert!(e.contains("authentication refused") && e.len() < 400, "{e}");
    }

    #[test]
    fn truncated_and_oversized_messages_are_errors() {
        let mut short = std::io::Cursor::new(vec![b'l', 2, 0, 1, 4, 0, 0, 0]);
        assert!(read_message(&mut short).is_err());
        let mut huge = vec![b'l', 2, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(read_message(&mut std::io::Cursor::new(huge)).is_err());
        // Header fields claiming more than there is.
        let mut bad = vec![b'l', 2, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 64, 0, 0, 0];
        bad.extend_from_slice(&[5, 1, b'u', 0]);
        assert!(parse_reply(&bad).is_err());
    }
}
