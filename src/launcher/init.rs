//! Process supervision: strata outside the container forwards signals to it (and relays
//! its terminal, with `tty`) and returns its exit status; with `--init`, a tiny init inside is PID 1, reaps zombies and
//! forwards the same signals to the command.

use super::error::{check, Context, EXIT_LAUNCHER};
use super::error::{Error, Result};
use super::tty;
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Signals passed on to the container.
pub const FORWARDED: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGWINCH,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn handled_set() -> libc::sigset_t {
    let mut all = FORWARDED.to_vec();
    all.push(libc::SIGCHLD);
    sys::process::sigset(&all)
}

/// Blocks the forwarded signals and SIGCHLD; they are then read synchronously
/// (signalfd outside, sigwaitinfo in the init). Children unblock before exec.
pub fn block_signals() -> Result<()> {
    sys::process::sigmask(libc::SIG_BLOCK, &handled_set())
        .context(|| "sigprocmask".into())
        .map(drop)
}

/// Waits for the container process `child`, forwarding signals, and returns its exit
/// code. `err` is the read end of the error pipe: the child writes `[code, message...]`
/// there if it fails before exec; at exec the pipe closes empty. With `-t`, `tty` relays
/// the container's terminal meanwhile, and takes the signals that concern it.
pub fn supervise(child: libc::pid_t, err: OwnedFd, mut tty: Option<tty::Relay>) -> Result<i32> {
    let mut signals = FORWARDED.to_vec();
    signals.push(libc::SIGCHLD);
    if let Some(t) = &tty {
        signals.extend(t.signals());
        sys::process::sigmask(libc::SIG_BLOCK, &sys::process::sigset(&t.signals()))
            .context(|| "sigprocmask".into())?;
    }
    let set = sys::process::sigset(&signals);
    // SAFETY: set is a valid sigset; the fd is owned below.
    let sfd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    check(sfd, || "signalfd".into())?;
    // SAFETY: sfd was just returned by the kernel.
    let sfd = unsafe { OwnedFd::from_raw_fd(sfd) };
    let mut err_fd = Some(err);
    let mut message = Vec::new();
    let status = loop {
        // Reap first: SIGCHLD may have been merged with an earlier one.
        if let Some((_, status)) =
            sys::process::waitpid(child, libc::WNOHANG).context(|| format!("waitpid {child}"))?
        {
            break status;
        }
        let mut fds = vec![
            libc::pollfd {
                fd: sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: err_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut timeout = -1;
        if let Some(t) = &tty {
            t.poll_fds(&mut fds);
            timeout = t.timeout();
        }
        sys::process::poll(&mut fds, timeout).context(|| "poll".into())?;
        if fds[1].revents != 0 {
            if let Some(f) = &err_fd {
                let mut buf = [0u8; 512];
                // SAFETY: buf is valid for writes of its length.
                let r = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    message.extend_from_slice(&buf[..r as usize]);
                } else {
                    err_fd = None; // EOF: exec happened (or the child is gone)
                }
            }
        }
        if let Some(t) = &mut tty {
            t.ready(&fds[2..])?;
        }
        if fds[0].revents != 0 {
            // SAFETY: signalfd_siginfo is plain data; read fills it.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let r = unsafe {
                libc::read(
                    sfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            let sig = info.ssi_signo as libc::c_int;
            if r as usize != size || sig == libc::SIGCHLD {
                continue;
            }
            if let Some(t) = &mut tty {
                if t.on_signal(sig)? {
                    continue;
                }
            }
            log::debug!("forwarding signal {sig} to {child}");
            sys::process::kill(child, sig);
        }
    };
    if let Some(t) = &mut tty {
        t.finish();
    }
    drop(tty);
    if let Some(f) = err_fd {
        message.extend(sys::process::read_to_end_raw(f.as_raw_fd()));
    }
    if let Some((&code, msg)) = message.split_first() {
        return Err(Error::with_code(
            String::from_utf8_lossy(msg).into_owned(),
            code as i32,
        ));
    }
    Ok(sys::process::status_to_code(status).unwrap_or(EXIT_LAUNCHER))
}

/// Reports a failure of the container process through the error pipe and exits.
pub fn fail(err_fd: libc::c_int, e: &Error) -> ! {
    let mut buf = vec![e.code.clamp(1, 255) as u8];
    buf.extend_from_slice(e.msg.as_bytes());
    sys::process::write_all_raw(err_fd, &buf);
    sys::process::exit_now(e.code)
}

/// `--init`: we are PID 1. Start the command as our child (`start` runs in the child and
/// only returns on failure), forward signals to it, reap every zombie, and exit with the
/// command's status once it is gone.
pub fn pid1(err_fd: libc::c_int, start: impl FnOnce() -> Error) -> ! {
    let cmd = match sys::process::clone_fork(0) {
        Ok(0) => fail(err_fd, &start()),
        Ok(pid) => pid,
        Err(e) => fail(err_fd, &Error::io("clone", e)),
    };
    // SAFETY: we no longer write errors; the command holds its own copy until exec.
    unsafe { libc::close(err_fd) };
    let set = handled_set();
    loop {
        // SAFETY: set is valid; a NULL info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig == -1 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            sys::process::kill(cmd, sig);
            continue;
        }
        // Reap everything that has exited: the command, and orphans reparented to us.
        while let Ok(Some((pid, status))) = sys::process::waitpid(-1, libc::WNOHANG) {
            if pid == cmd {
                sys::process::exit_now(
                    sys::process::status_to_code(status).unwrap_or(EXIT_LAUNCHER),
                );
            }
        }
    }
}
