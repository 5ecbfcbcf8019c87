//! Terminals: pseudo-terminal pairs, termios (raw mode), window sizes, the controlling
//! terminal, and putting a terminal back from a fatal-signal handler.
//!
//! Errors are plain `io::Error`s; callers say which terminal failed.

use super::cvt;
use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

pub type Termios = libc::termios;
pub type WinSize = libc::winsize;

/// Is `fd` a terminal?
pub fn is_terminal(fd: BorrowedFd) -> bool {
    // SAFETY: plain call on a valid descriptor.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

pub fn get_termios(fd: BorrowedFd) -> io::Result<Termios> {
    let mut t = MaybeUninit::<Termios>::uninit();
    // SAFETY: tcgetattr fills the struct on success.
    cvt(unsafe { libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()) })?;
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { t.assume_init() })
}

/// Applies `t` at once (TCSANOW: input already typed is kept, not flushed).
pub fn set_termios(fd: BorrowedFd, t: &Termios) -> io::Result<()> {
    loop {
        // SAFETY: t is a valid termios.
        let r = unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, t) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `t` in raw mode (cfmakeraw): no echo, no line editing, no signals from keys, no
/// output processing; bytes pass as they are.
pub fn raw(t: &Termios) -> Termios {
    let mut r = *t;
    // SAFETY: r is a valid termios.
    unsafe { libc::cfmakeraw(&mut r) };
    r
}

pub fn window_size(fd: BorrowedFd) -> io::Result<WinSize> {
    let mut w = WinSize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut w) })?;
    Ok(w)
}

/// Sets the size of a terminal; the kernel sends SIGWINCH to its foreground group.
pub fn set_window_size(fd: BorrowedFd, w: &WinSize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, w) }).map(drop)
}

/// Opens a new pseudo-terminal pair from the devpts instance `ptmx` belongs to (a
/// path to a `ptmx` node, or a symlink to one): (master, slave), both `O_NOCTTY` and
/// close-on-exec. The slave is opened through the master (TIOCGPTPEER), so it is the
/// pair's own slave whatever is mounted where.
pub fn open_pty(ptmx: &Path) -> io::Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(ptmx)?
        .into();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: the kernel just gave us this descriptor.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// The number N of a pty master's slave, `/dev/pts/N` in its devpts instance.
pub fn pty_number(master: BorrowedFd) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Makes the terminal `fd` the controlling terminal of the caller's session (the caller
/// must lead a session that has none).
pub fn set_controlling(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal it from another session).
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// The termios a fatal signal puts back, and the terminal it goes to (-1: none).
struct Saved(UnsafeCell<MaybeUninit<Termios>>);
// SAFETY: written only while RESTORE_FD is -1 (no handler reads it then), read only by
// the handler after RESTORE_FD was published with Release ordering.
unsafe impl Sync for Saved {}
static SAVED: Saved = Saved(UnsafeCell::new(MaybeUninit::uninit()));
static RESTORE_FD: AtomicI32 = AtomicI32::new(-1);

/// Signals whose default action ends the process and that a program does not catch
/// otherwise: on these the terminal is put back first. (Faults of the program itself,
/// SIGSEGV and the like, keep Rust's handlers; SIGKILL cannot be caught.)
const FATAL: [libc::c_int; 8] = [
    libc::SIGABRT,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGPWR,
    libc::SIGIO,
];

extern "C" fn restore_and_die(sig: libc::c_int) {
    let fd = RESTORE_FD.swap(-1, Ordering::Acquire);
    if fd >= 0 {
        // SAFETY: tcsetattr is async-signal-safe; SAVED was written before fd was published.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, (*SAVED.0.get()).as_ptr()) };
    }
    // SAFETY: the handler was installed with SA_RESETHAND: the default action follows
    // once it returns.
    unsafe { libc::raise(sig) };
}

/// The signals of `FATAL` whose handler is ours (bit N: signal N).
static INSTALLED: AtomicU64 = AtomicU64::new(0);

/// Until `forget_restore`, a fatal signal (see `FATAL`) sets `fd` back to `saved`
/// before the process dies of it. Signals that are ignored or handled already are left
/// alone.
pub fn restore_on_fatal_signal(fd: RawFd, saved: &Termios) {
    RESTORE_FD.store(-1, Ordering::Release);
    // SAFETY: no handler reads SAVED while RESTORE_FD is -1.
    unsafe { (*SAVED.0.get()).write(*saved) };
    RESTORE_FD.store(fd, Ordering::Release);
    for sig in FATAL {
        if INSTALLED.load(Ordering::Relaxed) & (1 << sig) != 0 {
            continue;
        }
        // SAFETY: zeroed sigactions are valid; ours has a valid handler and an empty mask.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = restore_and_die as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0 {
                INSTALLED.fetch_or(1 << sig, Ordering::Relaxed);
            }
        }
    }
}

/// Undoes `restore_on_fatal_signal`: the default dispositions again.
pub fn forget_restore() {
    RESTORE_FD.store(-1, Ordering::Release);
    let installed = INSTALLED.swap(0, Ordering::Relaxed);
    for sig in FATAL {
        if installed & (1 << sig) != 0 {
            // SAFETY: SIG_DFL is valid for these signals.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pty_pair_sizes_and_raw_mode() {
        let (master, slave) = open_pty(Path::new("/dev/ptmx")).unwrap();
        assert!(is_terminal(slave.as_fd()));
        let n = pty_number(master.as_fd()).unwrap();
        assert!(Path::new(&format!("/dev/pts/{n}")).exists());
        let w = WinSize {
            ws_row: 33,
            ws_col: 111,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        set_window_size(master.as_fd(), &w).unwrap();
        let got = window_size(slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 111));
        let cooked = get_termios(slave.as_fd()).unwrap();
        assert_ne!(cooked.c_lflag & libc::ICANON, 0);
        set_termios(slave.as_fd(), &raw(&cooked)).unwrap();
        let r = get_termios(slave.as_fd()).unwrap();
        assert_eq!(r.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        assert_eq!(r.c_oflag & libc::OPOST, 0);
        set_termios(slave.as_fd(), &cooked).unwrap();
        assert_eq!(get_termios(slave.as_fd()).unwrap().c_lflag, cooked.c_lflag);
    }
}
