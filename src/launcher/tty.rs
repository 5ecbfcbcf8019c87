//! The container's terminal (`-t`) and standard input.
//!
//! With `-t` the command gets a pseudo-terminal of the container's own devpts instance
//! (`rootfs` mounts it with `newinstance,ptmxmode=0666`, `/dev/ptmx` → `pts/ptmx`), so no
//! terminal of the host is reachable from inside. Who does what:
//!
//! 1. strata, before clone (`channel`): a socket pair, and the size of its own terminal.
//! 2. the container, after pivot_root (`Inside::attach`): opens `/dev/ptmx`, gives the
//!    pair that size, sends master and slave to strata over the socket (SCM_RIGHTS), and
//!    makes the slave its stdin, stdout and stderr. PID 1 does this before it execs (or,
//!    with `--init`, before it starts the command), so no output can come before strata
//!    holds the master.
//! 3. the command, after setsid (`take_control`): TIOCSCTTY makes the slave the
//!    controlling terminal of its session, so job control, Ctrl-C and Ctrl-Z work inside.
//! 4. strata (`Relay`, driven by `init::supervise`): receives the pair, puts its own
//!    terminal in raw mode (`RawMode`: restored when the relay ends whatever the reason,
//!    on SIGTSTP, and by a fatal signal), relays bytes both ways, copies window size
//!    changes (SIGWINCH) to the master, and once the container is gone reads what is
//!    left in the master. strata keeps the slave open too: the master then never reports
//!    a hang-up while the container runs, and the end of output is the container's exit.
//!
//! Without `-t`: stdin is strata's own with `-i`, else /dev/null (`stdin_null`); stdout
//! and stderr are strata's.

use super::error::{Context, Error, Result};
use crate::sys;
use crate::sys::tty::{Termios, WinSize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Size of one read from the master or from stdin.
const CHUNK: usize = 64 * 1024;

/// strata's stdin, where the host terminal is.
fn stdin() -> BorrowedFd<'static> {
    // SAFETY: descriptor 0 is never closed by strata.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: descriptor 1 is never closed by strata.
    unsafe { BorrowedFd::borrow_raw(1) }
}

/// The host terminal, if strata's stdin is one.
fn host_terminal() -> Option<BorrowedFd<'static>> {
    sys::tty::is_terminal(stdin()).then(stdin)
}

/// The container's half of the channel.
pub struct Inside {
    sock: OwnedFd,
    size: Option<WinSize>,
}

/// Makes the channel before the container is cloned: the container's half, and strata's
/// relay. `interactive`: relay strata's stdin to the terminal.
pub fn channel(interactive: bool) -> Result<(Inside, Relay)> {
    let (outside, inside) =
        sys::process::socketpair().context(|| "socketpair for the terminal".into())?;
    let size = host_terminal().and_then(|t| sys::tty::window_size(t).ok());
    let relay = Relay {
        sock: Some(outside),
        pty: None,
        raw: None,
        stdin_open: interactive,
        pending: Vec::new(),
        eof_pending: false,
        eof_wait: 10,
        buf: vec![0; CHUNK],
    };
    Ok((Inside { sock: inside, size }, relay))
}

impl Inside {
    /// In the container, after pivot_root: opens the terminal, sends it to strata and
    /// makes it stdin, stdout and stderr. `user`: the command's `--user`, who gets to own
    /// the terminal (as with podman).
    pub fn attach(self, user: Option<(u32, u32)>) -> Result<()> {
        let (master, slave) = sys::tty::open_pty(Path::new("/dev/ptmx"))
            .context(|| "open a terminal from the container's /dev/ptmx".into())?;
        let name = match sys::tty::pty_number(master.as_fd()) {
            Ok(n) => format!("/dev/pts/{n}"),
            Err(_) => "the terminal".into(),
        };
        if let Some(size) = &self.size {
            sys::tty::set_window_size(master.as_fd(), size)
                .context(|| format!("set the size of {name}"))?;
        }
        if let Some((uid, _)) = user {
            sys::fchown(slave.as_fd(), uid, u32::MAX).context(|| {
                format!("--user: chown {name} to {uid} (is it mapped in the user namespace?)")
            })?;
        }
        sys::process::send_fds(self.sock.as_fd(), &[master.as_fd(), slave.as_fd()])
            .context(|| format!("send {name} to strata"))?;
        for target in 0..3 {
            sys::process::dup2(slave.as_fd(), target)
                .context(|| format!("make {name} descriptor {target}"))?;
        }
        Ok(())
    }
}

/// In the command, after setsid: the terminal on stdin becomes the controlling terminal
/// of its session.
pub fn take_control() -> Result<()> {
    sys::tty::set_controlling(stdin())
        .context(|| "make the terminal the controlling terminal of the command (TIOCSCTTY)".into())
}

/// In the container without `-t` and `-i`: stdin is /dev/null (as with podman).
pub fn stdin_null() -> Result<()> {
    let null =
        std::fs::File::open("/dev/null").map_err(|e| Error::io("stdin: open /dev/null", e))?;
    sys::process::dup2(null.as_fd(), 0).context(|| "stdin: dup2 /dev/null".into())
}

/// The host terminal in raw mode; put back as it was on drop.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd) -> Result<RawMode> {
        let saved = sys::tty::get_termios(fd)
            .context(|| "read the settings of the terminal on stdin".into())?;
        sys::tty::restore_on_fatal_signal(fd.as_raw_fd(), &saved);
        let mode = RawMode { saved };
        mode.again()?;
        Ok(mode)
    }

    /// (Again) raw: at the start, and after strata was stopped and continued.
    fn again(&self) -> Result<()> {
        sys::tty::set_termios(stdin(), &sys::tty::raw(&self.saved))
            .context(|| "put the terminal on stdin in raw mode".into())
    }

    /// Back to the saved settings (before strata stops, and at the end).
    fn put_back(&self) {
        if let Err(e) = sys::tty::set_termios(stdin(), &self.saved) {
            log::warn!("cannot restore the settings of the terminal on stdin: {e}");
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.put_back();
        sys::tty::forget_restore();
    }
}

struct Pty {
    master: OwnedFd,
    /// Held so that the master never reads EOF while the container runs (and to see
    /// whether the terminal's input has been read).
    slave: OwnedFd,
}

/// strata's side: receives the terminal, relays it to strata's own stdin and stdout.
pub struct Relay {
    /// Until the terminal arrives.
    sock: Option<OwnedFd>,
    pty: Option<Pty>,
    /// The host terminal's saved settings while it is raw.
    raw: Option<RawMode>,
    /// Reading stdin (interactive, and no end of input yet).
    stdin_open: bool,
    /// Read from stdin, not yet written to the master.
    pending: Vec<u8>,
    /// stdin ended: the EOF character goes to the terminal once its input is read.
    eof_pending: bool,
    /// How long to wait before looking again whether it is read (ms).
    eof_wait: libc::c_int,
    buf: Vec<u8>,
}

fn pollfd(fd: BorrowedFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
}

/// Writes all of `buf` to `fd`, waiting whenever it is non-blocking and full.
fn write_all(fd: BorrowedFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match sys::write(fd, buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if would_block(&e) => {
                sys::process::poll(&mut [pollfd(fd, libc::POLLOUT)], -1)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Relay {
    /// Signals the relay handles itself (besides SIGWINCH): the caller blocks them and
    /// hands them to `on_signal`.
    pub fn signals(&self) -> [libc::c_int; 2] {
        [libc::SIGTSTP, libc::SIGCONT]
    }

    /// How long `poll` may wait (ms, -1: no limit): a little while the EOF character
    /// waits for the terminal's input to be read (10 ms, then longer up to 1 s).
    pub fn timeout(&self) -> libc::c_int {
        if self.eof_pending {
            self.eof_wait
        } else {
            -1
        }
    }

    /// Appends the descriptors to wait for.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        if let Some(s) = &self.sock {
            out.push(pollfd(s.as_fd(), libc::POLLIN));
        }
        if let Some(p) = &self.pty {
            let mut events = libc::POLLIN;
            if !self.pending.is_empty() {
                events |= libc::POLLOUT;
            }
            out.push(pollfd(p.master.as_fd(), events));
            if self.stdin_open && self.pending.is_empty() {
                out.push(pollfd(stdin(), libc::POLLIN));
            }
        }
    }

    /// Handles what `poll` found ready among the descriptors of `poll_fds` (after each
    /// poll, also when nothing was).
    pub fn ready(&mut self, fds: &[libc::pollfd]) -> Result<()> {
        self.maybe_send_eof();
        for p in fds.iter().filter(|p| p.revents != 0) {
            if self.sock.as_ref().is_some_and(|s| s.as_raw_fd() == p.fd) {
                return self.receive(true);
            }
            if self
                .pty
                .as_ref()
                .is_some_and(|t| t.master.as_raw_fd() == p.fd)
            {
                if p.revents & libc::POLLOUT != 0 {
                    self.flush_input();
                }
                if p.revents & !libc::POLLOUT != 0 {
                    self.relay_output();
                }
            } else if p.fd == 0 {
                self.relay_input();
            }
        }
        Ok(())
    }

    /// Takes the terminal from the socket (`running`: the container still runs; else
    /// only if it is there already). From then on the host terminal is raw when keys
    /// are relayed, and the container's has its size.
    fn receive(&mut self, running: bool) -> Result<()> {
        let Some(sock) = self.sock.take() else {
            return Ok(());
        };
        let fds = match sys::process::recv_fds(sock.as_fd(), running) {
            Ok(fds) => fds,
            Err(e) if !running && would_block(&e) => return Ok(()),
            Err(e) => return Err(Error::io("receive the container's terminal", e)),
        };
        let mut fds = fds.into_iter();
        let (Some(master), Some(slave)) = (fds.next(), fds.next()) else {
            // The container failed before it had a terminal: its error pipe says why.
            return Ok(());
        };
        sys::set_nonblocking(master.as_fd())
            .context(|| "make the terminal's master non-blocking".into())?;
        self.pty = Some(Pty { master, slave });
        if !running {
            return Ok(());
        }
        // Raw only when keys are relayed: else Ctrl-C must still stop strata.
        if let (true, Some(host)) = (self.stdin_open, host_terminal()) {
            self.raw = Some(RawMode::enter(host)?);
        }
        self.resize();
        Ok(())
    }

    /// Output of the container → strata's stdout. A stdout that is gone hangs the
    /// terminal up (its session gets SIGHUP, as a pipe's writer gets SIGPIPE).
    fn relay_output(&mut self) -> bool {
        let Some(pty) = &self.pty else {
            return false;
        };
        match sys::read(pty.master.as_fd(), &mut self.buf) {
            Ok(n) if n > 0 => {
                if let Err(e) = write_all(stdout(), &self.buf[..n]) {
                    log::debug!("stdout: {e}; hanging up the container's terminal");
                    self.pty = None;
                    self.stdin_open = false;
                }
                true
            }
            Ok(_) => false,
            Err(e) if would_block(&e) => false,
            Err(e) => {
                // EIO: no slave left (cannot happen while we hold one).
                log::debug!("terminal master: {e}");
                self.pty = None;
                false
            }
        }
    }

    /// strata's stdin → the terminal. At the end of input the terminal gets its EOF
    /// character (Ctrl-D) once, as if typed, when everything before it has been read
    /// (as script(1) does).
    fn relay_input(&mut self) {
        match sys::read(stdin(), &mut self.buf) {
            Ok(n) if n > 0 => {
                self.pending.extend_from_slice(&self.buf[..n]);
                self.flush_input();
            }
            Err(e) if would_block(&e) => {}
            end => {
                log::debug!("end of stdin: {end:?}");
                self.stdin_open = false;
                self.eof_pending = self.pty.is_some();
            }
        }
    }

    fn maybe_send_eof(&mut self) {
        let Some(pty) = &self.pty else {
            return;
        };
        if !self.eof_pending || !self.pending.is_empty() {
            return;
        }
        let mut unread = [pollfd(pty.slave.as_fd(), libc::POLLIN)];
        if sys::process::poll(&mut unread, 0).is_ok_and(|n| n > 0) {
            self.eof_wait = (self.eof_wait * 2).min(1000);
            return;
        }
        let eof = sys::tty::get_termios(pty.master.as_fd()).map_or(4, |t| t.c_cc[libc::VEOF]);
        self.eof_pending = false;
        self.pending.push(eof);
        self.flush_input();
    }

    fn flush_input(&mut self) {
        let Some(pty) = &self.pty else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match sys::write(pty.master.as_fd(), &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if would_block(&e) => return,
                Err(e) => {
                    log::debug!("terminal master: {e}");
                    self.pending.clear();
                }
            }
        }
    }

    /// Copies the host terminal's size to the container's.
    fn resize(&self) {
        if let (Some(pty), Some(host)) = (&self.pty, host_terminal()) {
            let r = sys::tty::window_size(host)
                .and_then(|w| sys::tty::set_window_size(pty.master.as_fd(), &w));
            if let Err(e) = r {
                log::debug!("window size: {e}");
            }
        }
    }

    /// Handles a signal strata got; false when it is not the relay's to handle (then it
    /// is forwarded to the container).
    pub fn on_signal(&mut self, sig: libc::c_int) -> Result<bool> {
        match sig {
            libc::SIGWINCH => self.resize(),
            libc::SIGTSTP => {
                // Stop as asked, with the terminal as the shell expects it.
                if let Some(r) = &self.raw {
                    r.put_back();
                }
                sys::process::kill(std::process::id() as libc::pid_t, libc::SIGSTOP);
            }
            libc::SIGCONT => {
                if let Some(r) = &self.raw {
                    r.again()?;
                }
                self.resize();
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// After the container is gone: takes the terminal if it was still on its way, and
    /// relays what is left in the master (every writer is gone, so that is all of it).
    pub fn finish(&mut self) {
        if let Err(e) = self.receive(false) {
            log::debug!("{e}");
        }
        while self.relay_output() {}
        self.pty = None;
        self.raw = None;
    }
}
