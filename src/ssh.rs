//! The SSH effect layer (ssh2): connect with the link's key, check the pinned host key, run commands as root,
//! write files, and reach hosts behind a tunnel host through a direct-tcpip channel. Synchronous on purpose:
//! callers run one thread per host.

use crate::state::SshTarget;
use base64::Engine;
use ssh2::{HostKeyType, MethodType, Session};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per blocking libssh2 call; long commands (cloud-init wait, key generation under emulation) stay well inside.
const IO_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: cannot connect to {addr}: {source}. Check that the instance is running, that its security group allows SSH from this machine (--ssh-cidr), and the address")]
    Connect {
        host: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("{host}: SSH {stage} failed: {source}")]
    Protocol {
        host: String,
        stage: &'static str,
        source: ssh2::Error,
    },
    #[error("{host}: host key mismatch: expected {expected}, server offered {offered}. The host was replaced or someone is in the path; if it was re-created, run `vpclink status` and re-run `vpclink up` to re-pin")]
    HostKeyMismatch {
        host: String,
        expected: String,
        offered: String,
    },
    #[error("{host}: key {key} was refused for user {user}; check that the instance was launched with the link's key pair")]
    Auth {
        host: String,
        user: String,
        key: PathBuf,
    },
    #[error("{host}: `{command}` exited {status}: {stderr}")]
    Command {
        host: String,
        command: String,
        status: i32,
        stderr: String,
    },
    #[error("{host}: {what}: {source}")]
    Io {
        host: String,
        what: &'static str,
        source: std::io::Error,
    },
}

impl SshError {
    /// Whether the host may just not be listening yet: on a fresh instance sshd starts late in boot, and a
    /// connection can be refused, reset or time out, or the handshake cut, until it does; through a tunnel host, the
    /// channel to the host behind it is refused the same way. Never a key mismatch or a refused login key.
    pub fn is_not_up_yet(&self) -> bool {
        match self {
            SshError::Connect { .. } => true,
            SshError::Protocol { stage, .. } => {
                matches!(
                    *stage,
                    "handshake" | "opening a channel through the tunnel host"
                )
            }
            _ => false,
        }
    }
}

/// The result of one remote command.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// An authenticated session to one host.
pub struct Conn {
    pub label: String,
    session: Session,
    root: bool,
    /// The forwarder thread of a jumped connection; stopped on drop.
    _jump: Option<Jump>,
}

/// What to trust about the server's key.
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// Must match this OpenSSH public key line.
    Pinned(String),
    /// Accept what the server offers (the caller warns and pins it).
    FirstUse,
}

impl Conn {
    /// Connect straight to `target`.
    pub fn open(
        label: &str,
        target: &SshTarget,
        key: &Path,
        policy: &HostKeyPolicy,
    ) -> Result<(Conn, String), SshError> {
        let addr = format!("{}:{}", target.host, target.port);
        let stream = connect(label, &addr)?;
        Self::over(label, stream, target, key, policy, None)
    }

    /// Connect to `target` through `via`: a direct-tcpip channel on a dedicated session to the jump host, bridged to
    /// a loopback socket so that libssh2 gets a real file descriptor.
    pub fn open_via(
        label: &str,
        via_label: &str,
        via: &SshTarget,
        via_policy: &HostKeyPolicy,
        target: &SshTarget,
        key: &Path,
        policy: &HostKeyPolicy,
    ) -> Result<(Conn, String), SshError> {
        let (jump_conn, _) = Conn::open(via_label, via, key, via_policy)?;
        let jump = Jump::start(jump_conn, label, &target.host, target.port)?;
        let stream = connect(label, &jump.local_addr)?;
        Self::over(label, stream, target, key, policy, Some(jump))
    }

    fn over(
        label: &str,
        stream: TcpStream,
        target: &SshTarget,
        key: &Path,
        policy: &HostKeyPolicy,
        jump: Option<Jump>,
    ) -> Result<(Conn, String), SshError> {
        let proto = |stage| {
            let host = label.to_string();
            move |source| SshError::Protocol {
                host,
                stage,
                source,
            }
        };
        let mut session = Session::new().map_err(proto("setup"))?;
        if let HostKeyPolicy::Pinned(line) = policy {
            // Ask for the algorithm we pinned, so a server with several host keys offers the right one.
            if let Some(alg) = line.split_whitespace().next() {
                session
                    .method_pref(MethodType::HostKey, alg)
                    .map_err(proto("host key preference"))?;
            }
        }
        session.set_tcp_stream(stream);
        session.set_timeout(IO_TIMEOUT.as_millis() as u32);
        session.handshake().map_err(proto("handshake"))?;
        let offered = offered_key(&session).ok_or_else(|| SshError::HostKeyMismatch {
            host: label.to_string(),
            expected: "a host key".into(),
            offered: "none".into(),
        })?;
        if let HostKeyPolicy::Pinned(expected) = policy {
            if !same_key(expected, &offered) {
                return Err(SshError::HostKeyMismatch {
                    host: label.to_string(),
                    expected: expected.clone(),
                    offered,
                });
            }
        }
        session
            .userauth_pubkey_file(&target.user, None, key, None)
            .map_err(|_| SshError::Auth {
                host: label.to_string(),
                user: target.user.clone(),
                key: key.to_path_buf(),
            })?;
        let conn = Conn {
            label: label.to_string(),
            session,
            root: target.user == "root",
            _jump: jump,
        };
        Ok((conn, offered))
    }

    /// Run a shell script as root (through `sudo -n` for other users); returns whatever it exits with.
    pub fn run(&self, script: &str) -> Result<Output, SshError> {
        self.run_with_input(script, &[])
    }

    /// Like `run`, but fail unless it exits 0.
    pub fn check(&self, script: &str) -> Result<String, SshError> {
        let out = self.run(script)?;
        if out.status != 0 {
            return Err(SshError::Command {
                host: self.label.clone(),
                command: first_line(script),
                status: out.status,
                stderr: out.stderr.trim().chars().take(600).collect(),
            });
        }
        Ok(out.stdout)
    }

    pub fn run_with_input(&self, script: &str, input: &[u8]) -> Result<Output, SshError> {
        let proto = |stage| {
            let host = self.label.clone();
            move |source| SshError::Protocol {
                host,
                stage,
                source,
            }
        };
        let io = |what| {
            let host = self.label.clone();
            move |source| SshError::Io { host, what, source }
        };
        let command = self.as_root(script);
        let mut ch = self.session.channel_session().map_err(proto("channel"))?;
        ch.exec(&command).map_err(proto("exec"))?;
        if !input.is_empty() {
            ch.write_all(input).map_err(io("writing stdin"))?;
        }
        ch.send_eof().map_err(proto("eof"))?;
        let mut stdout = String::new();
        ch.read_to_string(&mut stdout)
            .map_err(io("reading stdout"))?;
        let mut stderr = String::new();
        ch.stderr()
            .read_to_string(&mut stderr)
            .map_err(io("reading stderr"))?;
        ch.wait_close().map_err(proto("close"))?;
        let status = ch.exit_status().map_err(proto("exit status"))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Write files durably, all in one command (see [`durable_write_script`]).
    pub fn write_files(&self, files: &[FileWrite]) -> Result<(), SshError> {
        if files.is_empty() {
            return Ok(());
        }
        let out = self.run(&durable_write_script(files))?;
        if out.status != 0 {
            let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
            return Err(SshError::Command {
                host: self.label.clone(),
                command: format!("write {}", paths.join(" ")),
                status: out.status,
                stderr: out.stderr.trim().chars().take(600).collect(),
            });
        }
        Ok(())
    }

    fn as_root(&self, script: &str) -> String {
        if self.root {
            format!("sh -c {}", quote(script))
        } else {
            format!("sudo -n sh -c {}", quote(script))
        }
    }
}

fn connect(label: &str, addr: &str) -> Result<TcpStream, SshError> {
    let err = |source| SshError::Connect {
        host: label.to_string(),
        addr: addr.to_string(),
        source,
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(err)?
        .next()
        .ok_or_else(|| err(std::io::Error::other("no address")))?;
    TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT).map_err(err)
}

fn offered_key(session: &Session) -> Option<String> {
    let (bytes, kind) = session.host_key()?;
    let name = match kind {
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        _ => "unknown",
    };
    Some(format!(
        "{name} {}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Compare OpenSSH key lines on type and key, ignoring comments.
pub fn same_key(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        let mut it = s.split_whitespace();
        (it.next().map(str::to_string), it.next().map(str::to_string))
    };
    let (pa, pb) = (parts(a), parts(b));
    pa.0.is_some() && pa.1.is_some() && pa == pb
}

/// Single-quote for sh.
/// One file to write on a host.
#[derive(Debug, Clone, Copy)]
pub struct FileWrite<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub content: &'a str,
}

/// A POSIX sh script that writes every file durably: each to a temporary file beside it, all fsynced, each renamed
/// into place, then their directories fsynced. A reader never sees half a file, and a power cut right after leaves
/// either the old file or the new one, never an empty one (ext4's delayed allocation loses unsynced data on a hard
/// reset: measured in the lab). One command for all the files: under an emulated CPU every command (sudo, a shell)
/// costs a few hundred milliseconds, and configure writes six files per host. Contents travel base64-encoded in
/// here-documents, so no byte of a file can end one early. `sync FILE...` fsyncs each file or directory named (GNU
/// coreutils >= 8.24, "sync invocation"; AL2023, Debian and Ubuntu ship newer); `base64 -d` is coreutils too.
pub fn durable_write_script(files: &[FileWrite]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir_of = |path: &str| {
        std::path::Path::new(path)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| ".".into())
    };
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let dir = dir_of(f.path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let quoted_dirs: Vec<String> = dirs.iter().map(|d| quote(d)).collect();
    // Directories as any other (0755 under umask 022: readable, as /etc is); the files themselves are made under
    // umask 077 and given their mode before they are moved into place, so none is readable early.
    let mut s = format!(
        "set -e\numask 022\nmkdir -p {}\numask 077\n",
        quoted_dirs.join(" ")
    );
    let mut temps = Vec::new();
    for f in files {
        let p = quote(f.path);
        let t = quote(&format!("{}.vpclink-new", f.path));
        let encoded = b64.encode(f.content.as_bytes());
        s.push_str(&format!("base64 -d > {t} <<'VPCLINK_EOF'\n"));
        for chunk in encoded.as_bytes().chunks(76) {
            s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            s.push('\n');
        }
        s.push_str("VPCLINK_EOF\n");
        s.push_str(&format!("chmod {:o} {t}\n", f.mode));
        temps.push((t, p));
    }
    let quoted_temps: Vec<&str> = temps.iter().map(|(t, _)| t.as_str()).collect();
    s.push_str(&format!("sync {}\n", quoted_temps.join(" ")));
    for (t, p) in &temps {
        s.push_str(&format!("mv -f {t} {p}\n"));
    }
    s.push_str(&format!("sync {}\n", quoted_dirs.join(" ")));
    s
}

pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn first_line(s: &str) -> String {
    let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    l.chars().take(120).collect()
}

/// A loopback listener whose one connection is bridged to a direct-tcpip channel on the jump host.
struct Jump {
    local_addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Jump {
    fn start(jump: Conn, label: &str, host: &str, port: u16) -> Result<Jump, SshError> {
        let io = |what| {
            let host = label.to_string();
            move |source| SshError::Io { host, what, source }
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a loopback port"))?;
        let local_addr = listener
            .local_addr()
            .map_err(io("binding a loopback port"))?
            .to_string();
        let channel = jump
            .session
            .channel_direct_tcpip(host, port, None)
            .map_err(|source| SshError::Protocol {
                host: label.to_string(),
                stage: "opening a channel through the tunnel host",
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: the accept must come within the connect timeout.
            listener.set_nonblocking(true).ok();
            let deadline = Instant::now() + CONNECT_TIMEOUT;
            let sock = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if Instant::now() < deadline && !flag.load(Ordering::Relaxed) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            };
            pump(jump, channel, sock, &flag);
        });
        Ok(Jump {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Jump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copy bytes both ways until either end closes or `stop` is set. The jump session is non-blocking and used by
/// this thread alone.
fn pump(jump: Conn, mut ch: ssh2::Channel, mut sock: TcpStream, stop: &AtomicBool) {
    jump.session.set_blocking(false);
    sock.set_nonblocking(true).ok();
    let mut up = Vec::<u8>::new(); // socket -> channel, not yet written
    let mut buf = [0u8; 32 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                up.extend_from_slice(&buf[..n]);
                idle = false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if !up.is_empty() {
            match ch.write(&up) {
                Ok(n) => {
                    up.drain(..n);
                    idle = false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        match ch.read(&mut buf) {
            Ok(0) if ch.eof() => break,
            Ok(0) => {}
            Ok(n) => {
                if write_all_retry(&mut sock, &buf[..n], stop).is_err() {
                    break;
                }
                idle = false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = ch.close();
}

fn write_all_retry(
    sock: &mut TcpStream,
    mut data: &[u8],
    stop: &AtomicBool,
) -> std::io::Result<()> {
    while !data.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("stopped"));
        }
        match sock.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn keys_compare_without_comments() {
        assert!(same_key("ssh-ed25519 AAAA x@y", "ssh-ed25519 AAAA"));
        assert!(!same_key("ssh-ed25519 AAAA", "ssh-ed25519 AAAB"));
        assert!(!same_key("ssh-rsa AAAA", "ssh-ed25519 AAAA"));
        assert!(!same_key("", ""));
    }

    /// The script is run here, by this machine's sh, on files in a temporary directory: contents (quotes, a line
    /// that looks like the here-document's end, no trailing newline, binary-ish bytes) arrive exactly, with their
    /// modes, nothing temporary is left, and a file that existed is replaced.
    #[test]
    fn durable_write_script_writes_exactly_what_it_is_given() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
        let (a, b, c) = (p("etc/a.conf"), p("etc/sub dir/b's.sh"), p("c"));
        std::fs::write(&c, "old").unwrap();
        let tricky = "it's \"quoted\" $HOME `x`\nVPCLINK_EOF\n\u{1}\u{7f} no newline";
        let files = [
            FileWrite {
                path: &a,
                mode: 0o644,
                content: "one\n",
            },
            FileWrite {
                path: &b,
                mode: 0o755,
                content: tricky,
            },
            FileWrite {
                path: &c,
                mode: 0o600,
                content: "",
            },
        ];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(durable_write_script(&files))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in &files {
            assert_eq!(
                std::fs::read_to_string(f.path).unwrap(),
                f.content,
                "{}",
                f.path
            );
            let mode = std::fs::metadata(f.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, f.mode, "{}", f.path);
        }
        // A directory it makes is as any other (0755), not as private as the files' temporaries: the lab's power-cut
        // test, reading as an unprivileged user, found /etc/vpclink/NAME at 0700 when the umask leaked into mkdir.
        for d in [dir.path().join("etc"), dir.path().join("etc/sub dir")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", d.display());
        }
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".vpclink-new"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(d: &std::path::Path) -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                v.extend(walk(&e));
            } else {
                v.push(e.to_string_lossy().into_owned());
            }
        }
        v
    }
}
