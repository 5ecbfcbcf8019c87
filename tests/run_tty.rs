//! `strata run -t`: a terminal of the container's own. Each test drives strata through a
//! real pseudo-terminal, as a user's terminal would: the test holds the master, strata
//! gets the slave as stdin, stdout, stderr and controlling terminal, and the test types
//! keystrokes and reads the screen. Every read is bounded (poll with a deadline).

mod support;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Instant;
use support::*;

/// A pty pair made by the test (close-on-exec, so no other test's child inherits it).
fn openpty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls; every descriptor is owned right away.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 64];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(
            s >= 0,
            "open {:?}: {}",
            CStr::from_ptr(name.as_ptr()),
            std::io::Error::last_os_error()
        );
        let slave = OwnedFd::from_raw_fd(s);
        set_size(&master, rows, cols);
        (master, slave)
    }
}

fn set_size(fd: &OwnedFd, rows: u16, cols: u16) {
    let w = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &w) },
        0
    );
}

fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: tcgetattr fills the struct.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t
    }
}

/// The fields of a termios that a terminal program may change.
fn settings(t: &libc::termios) -> (u32, u32, u32, u32, Vec<u8>, u32, u32) {
    (
        t.c_iflag,
        t.c_oflag,
        t.c_cflag,
        t.c_lflag,
        t.c_cc.to_vec(),
        t.c_ispeed,
        t.c_ospeed,
    )
}

/// strata on a pty of the test's: `master` is the keyboard and the screen.
struct Session {
    child: KillOnDrop,
    master: OwnedFd,
    /// Kept open: the pty's settings are read through it after strata exits.
    slave: OwnedFd,
    screen: Vec<u8>,
    /// How much of `screen` earlier `expect`s consumed.
    seen: usize,
    before: libc::termios,
}

impl Session {
    /// `strata run --rootfs ROOTFS EXTRA -- CMD` with the pty as its controlling
    /// terminal (setsid + TIOCSCTTY before exec; setpriv keeps it when rootless).
    fn start(env: &Env, extra: &[&str], cmd: &[&str]) -> Session {
        let (master, slave) = openpty(24, 80);
        let before = termios(&slave);
        let root = env.rootfs.to_str().unwrap().to_string();
        let mut args = vec!["--rootfs", &root];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        let mut c = env.strata(&args);
        let stdio = || Stdio::from(slave.try_clone().unwrap());
        c.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = KillOnDrop(c.spawn().expect("spawn strata"));
        Session {
            child,
            master,
            slave,
            screen: Vec::new(),
            seen: 0,
            before,
        }
    }

    fn pid(&self) -> i32 {
        // With setpriv in front (rootless), strata is setpriv's exec'd image: same pid.
        self.child.0.id() as i32
    }

    fn send(&self, keys: &str) {
        let mut f = std::fs::File::from(self.master.try_clone().unwrap());
        f.write_all(keys.as_bytes()).unwrap();
    }

    /// Reads what is there within `ms` milliseconds (nothing when nothing comes).
    fn pump(&mut self, ms: i32) {
        let mut p = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, ms) } == 1 && p.revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 65536];
            let mut f = std::fs::File::from(self.master.try_clone().unwrap());
            if let Ok(n) = f.read(&mut buf) {
                self.screen.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Reads the screen until `needle` appears after what earlier calls consumed;
    /// returns the text up to its end. Fails after `DEADLINE`.
    fn expect(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let rest = &self.screen[self.seen..];
            if let Some(i) = find(rest, needle.as_bytes()) {
                let end = self.seen + i + needle.len();
                let out = text(&self.screen[self.seen..end]);
                self.seen = end;
                return out;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{needle:?} never showed; the screen:\n{}",
                text(&self.screen)
            );
            self.pump(100);
        }
    }

    /// Waits for strata to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                self.pump(0);
                return s.code();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "strata did not exit; the screen:\n{}",
                text(&self.screen)
            );
            self.pump(20);
        }
    }

    /// The pty's settings are as they were before strata started.
    fn assert_restored(&self) {
        assert_eq!(
            settings(&termios(&self.slave)),
            settings(&self.before),
            "the terminal's settings were not restored"
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A sleep duration no other test uses, so its process can be found in /proc.
fn unique_secs() -> String {
    format!("{}{}", std::process::id(), unique())
}

/// The state letter of `sleep SECS` (R, S, T, Z...), if such a process exists.
fn sleep_state(secs: &str) -> Option<(u32, char)> {
    let want = format!("sleep\0{secs}\0");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read(e.path().join("cmdline")).ok().as_deref() != Some(want.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if let Some(s) = state {
            return Some((pid, s));
        }
    }
    None
}

fn wait_sleep(secs: &str, what: &str, ok: impl Fn(char) -> bool) {
    wait_for(what, DEADLINE, || {
        sleep_state(secs).is_some_and(|(_, s)| ok(s))
    });
}

fn wait_sleep_gone(secs: &str) {
    wait_for("the sleep to end", DEADLINE, || {
        sleep_state(secs).is_none_or(|(_, s)| s == 'Z' || s == 'X')
    });
}

const SH: [&str; 2] = ["/bin/sh", "-i"];

both_modes!(terminal_is_the_containers_own, |mode| {
    let env = Env::new(mode);
    let mut s = Session::start(&env, &["-t"], &SH);
    s.send("echo R$((1+1))\r");
    s.expect("R2");
    // While the container runs, strata's terminal is raw: keys go through untouched.
    let raw = termios(&s.slave);
    assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
    assert_eq!(raw.c_oflag & libc::OPOST, 0);
    s.send(
        "tty; ls /dev/pts | tr '\\n' ' '; test -t 0 && test -t 1 && test -t 2 && echo E$((2+2))\r",
    );
    let out = s.expect("E4");
    // The pty is the first of a fresh devpts instance; none of the host's is there.
    assert!(out.contains("\r\n/dev/pts/0\r\n"), "{out}");
    assert!(out.contains("\r\n0 ptmx E4"), "{out}");
    // The command leads its session and the pty is its controlling terminal.
    s.send("cut -d' ' -f6,7 /proc/$$/stat; echo $$ S$((3+3))\r");
    let out = s.expect("S6");
    assert!(
        out.contains("\r\n1 34816\r\n1 S6"),
        "sid 1, tty 136:0: {out}"
    );
    s.send("exit 3\r");
    assert_eq!(s.wait(), Some(3), "{}", text(&s.screen));
    s.assert_restored();
    env.assert_clean();
});

both_modes!(ctrl_c_stops_the_foreground_job, |mode| {
    let env = Env::new(mode);
    let mut s = Session::start(&env, &["-t"], &SH);
    let secs = unique_secs();
    s.send(&format!("sleep {secs}\r"));
    wait_sleep(&secs, "sleep running", |st| st == 'S');
    s.send("\x03");
    wait_sleep_gone(&secs);
    s.send("echo A$? B$((1+1))\r");
    s.expect("A130 B2");
    s.send("exit\r");
    assert_eq!(s.wait(), Some(0), "{}", text(&s.screen));
    s.assert_restored();
    env.assert_clean();
});

both_modes!(ctrl_z_jobs_and_fg, |mode| {
    let env = Env::new(mode);
    let mut s = Session::start(&env, &["-t"], &SH);
    let secs = unique_secs();
    s.send(&format!("sleep {secs}\r"));
    wait_sleep(&secs, "sleep running", |st| st == 'S');
    s.send("\x1a");
    wait_sleep(&secs, "sleep stopped", |st| st == 'T');
    s.expect("Stopped");
    s.send("jobs; echo J$((1+1))\r");
    let out = s.expect("J2");
    assert!(
        out.contains("Stopped") && out.contains(&format!("sleep {secs}\r\n")),
        "jobs lists it: {out}"
    );
    s.send("fg\r");
    wait_sleep(&secs, "sleep continued", |st| st != 'T');
    s.send("\x03");
    wait_sleep_gone(&secs);
    s.send("jobs; echo K$((1+1))\r");
    let out = s.expect("K2");
    assert!(!out.contains("Stopped"), "no job left: {out}");
    s.send("exit 0\r");
    assert_eq!(s.wait(), Some(0), "{}", text(&s.screen));
    s.assert_restored();
    env.assert_clean();
});

both_modes!(window_size_follows, |mode| {
    let env = Env::new(mode);
    let mut s = Session::start(&env, &["-t"], &SH);
    // The size strata's terminal has at the start...
    s.send("stty size; echo W$((1+1))\r");
    let out = s.expect("W2");
    assert!(out.contains("\r\n24 80\r\n"), "{out}");
    // ...and a resize: the kernel sends SIGWINCH to strata, which copies the new size.
    set_size(&s.master, 33, 111);
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        s.send(&format!("stty size; echo V$(({n}*1000+1))\r"));
        let out = s.expect(&format!("V{}", n * 1000 + 1));
        if out.contains("\r\n33 111\r\n") {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the size never changed: {out}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s.send("exit\r");
    assert_eq!(s.wait(), Some(0), "{}", text(&s.screen));
    s.assert_restored();
    env.assert_clean();
});

/// The container's PID 1 (the child of strata named `comm`).
fn container_pid(strata: i32, comm: &str) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let name = head.split_once(" (")?.1;
        let ppid: i32 = rest.split(' ').nth(1)?.parse().ok()?;
        (ppid == strata && name == comm).then_some(pid)
    })
}

both_modes!(terminal_restored_when_killed, |mode| {
    let env = Env::new(mode);
    // The command dies of SIGKILL (it is not PID 1 under --init).
    let mut s = Session::start(&env, &["-t", "--init"], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(s.wait(), Some(137), "{}", text(&s.screen));
    s.assert_restored();
    // The container's PID 1 is SIGKILLed from outside.
    let mut s = Session::start(&env, &["-t"], &SH);
    s.send("echo P$((1+1))\r");
    s.expect("P2");
    let pid = container_pid(s.pid(), "sh").expect("the container's sh");
    // SAFETY: plain kill.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(s.wait(), Some(137), "{}", text(&s.screen));
    s.assert_restored();
    // strata gets SIGHUP (the terminal hung up, say): passed on, the shell dies of it.
    let mut s = Session::start(&env, &["-t", "--init"], &SH);
    s.send("echo H$((1+1))\r");
    s.expect("H2");
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(s.pid(), libc::SIGHUP) };
    assert_eq!(s.wait(), Some(129), "{}", text(&s.screen));
    s.assert_restored();
    env.assert_clean();
});

both_modes!(tty_false_gives_no_terminal, |mode| {
    let env = Env::new(mode);
    let script = "tty; echo rc=$?";
    // By default strata's stdin being a terminal gives the container one.
    let mut s = Session::start(&env, &[], &["sh", "-c", script]);
    let out = s.expect("rc=0");
    assert!(out.contains("/dev/pts/0\r\n"), "{out}");
    assert_eq!(s.wait(), Some(0));
    s.assert_restored();
    // --tty=false: no terminal inside, and strata leaves its own alone.
    let mut s = Session::start(&env, &["--tty=false"], &["sh", "-c", script]);
    let out = s.expect("rc=1");
    assert!(out.contains("not a tty"), "{out}");
    assert_eq!(s.wait(), Some(0));
    s.assert_restored();
    env.assert_clean();
});

/// Runs `strata run --rootfs R EXTRA -- CMD` with `input` on a pipe as stdin; (exit code,
/// stdout).
fn piped(env: &Env, extra: &[&str], cmd: &[&str], input: Vec<u8>) -> (Option<i32>, Vec<u8>) {
    let root = env.rootfs.to_str().unwrap().to_string();
    let mut args = vec!["--rootfs", &root];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    let mut c = env.strata(&args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The command may not read it all (stdin is /dev/null without -i).
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < DEADLINE, "strata did not finish");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    writer.join().unwrap();
    (status.code(), reader.join().unwrap())
}

both_modes!(pipes_without_a_terminal, |mode| {
    let env = Env::new(mode);
    // -i: 1 MiB passes through cat byte for byte.
    let mut data = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x1234_5678;
    while data.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let (code, out) = piped(&env, &["-i"], &["cat"], data.clone());
    assert_eq!(code, Some(0));
    assert!(out == data, "{} bytes came back, not the same", out.len());
    // Without -i the command's stdin is /dev/null (as with podman).
    let (code, out) = piped(&env, &[], &["cat"], b"hi\n".to_vec());
    assert_eq!((code, text(&out)), (Some(0), String::new()));
    let (code, out) = piped(
        &env,
        &[],
        &["sh", "-c", "wc -c; test -c /dev/stdin && echo null"],
        b"hi\n".to_vec(),
    );
    assert_eq!((code, text(&out)), (Some(0), "0\nnull\n".to_string()));
    // -t on a pipe: the terminal echoes, and the end of input is typed as Ctrl-D.
    let (code, out) = piped(&env, &["-t"], &["cat"], b"a\nb\n".to_vec());
    assert_eq!(code, Some(0), "{}", text(&out));
    assert!(text(&out).contains("a\r\nb\r\n"), "{}", text(&out));
    env.assert_clean();
});
