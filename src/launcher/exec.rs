//! The last steps before the command runs: environment, working directory, user,
//! no_new_privs, the capability bounding set, a new session (with its controlling
//! terminal under `-t`), and execve.

use super::error::{check, cstr, Context};
use super::error::{Error, Result, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND};
use super::spec::Spec;
use super::tty;
use crate::sys;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capabilities left in the bounding set: the OCI default (AUDIT_WRITE, KILL, NET_BIND_SERVICE).
pub const KEEP_CAPS: [u32; 3] = [29, 5, 10];

const PR_CAPBSET_DROP: libc::c_int = 24;

/// The command's environment: a small default (like Docker's), then `--env`.
pub fn environment(spec: &Spec, host_term: Option<String>) -> Vec<(String, String)> {
    let home = match spec.user {
        Some((uid, _)) if uid != 0 => "/",
        _ => "/root",
    };
    let mut env = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), home.to_string()),
        ("HOSTNAME".to_string(), spec.hostname.clone()),
    ];
    if let Some(t) = host_term {
        env.push(("TERM".into(), t));
    }
    for (k, v) in &spec.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Finds `cmd` like a shell does: as given when it holds a `/`, else in `$PATH`.
pub fn resolve(cmd: &str, path_var: &str, is_exec: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    path_var
        .split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(cmd))
        .find(|p| is_exec(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Drops every capability from the bounding set except `KEEP_CAPS`.
pub fn drop_bounding_caps() -> Result<()> {
    for cap in 0..64u32 {
        if KEEP_CAPS.contains(&cap) {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        if unsafe { libc::prctl(PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } == -1 {
            if sys::process::last_errno() == libc::EINVAL {
                break; // past the last capability this kernel knows
            }
            return Err(Error::last_os(format!(
                "drop capability {cap} from the bounding set"
            )));
        }
    }
    Ok(())
}

fn set_user(uid: u32, gid: u32) -> Result<()> {
    // SAFETY: plain syscalls. setgroups is refused (EPERM) when the namespace has
    // setgroups=deny (single-id map); the supplementary groups are then already empty.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) == -1 && sys::process::last_errno() != libc::EPERM {
            return Err(Error::last_os("setgroups"));
        }
        let hint = " (is it mapped in the user namespace?)";
        check(libc::setresgid(gid, gid, gid), || {
            format!("--user: setgid {gid}{hint}")
        })?;
        check(libc::setresuid(uid, uid, uid), || {
            format!("--user: setuid {uid}{hint}")
        })?;
    }
    Ok(())
}

/// Everything that must happen in the process that becomes the command.
/// Only returns on failure; the error carries the exit code (127 not found, 126 cannot run).
pub fn exec_command(spec: &Spec) -> Error {
    match prepare_and_exec(spec) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn prepare_and_exec(spec: &Spec) -> Result<std::convert::Infallible> {
    let wd = cstr(&spec.workdir)?;
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(wd.as_ptr()) }, || {
        format!("--workdir {}", spec.workdir.display())
    })?;
    // Own session: the command cannot push input into strata's terminal (TIOCSTI). With
    // `-t` the container's terminal becomes the session's controlling terminal.
    // SAFETY: plain syscall; EPERM only if already a session leader.
    unsafe { libc::setsid() };
    if spec.tty {
        tty::take_control()?;
    }
    sys::process::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    drop_bounding_caps()?;
    if let Some((uid, gid)) = spec.user {
        set_user(uid, gid)?;
    }
    let env = environment(spec, std::env::var("TERM").ok());
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str());
    let name = &spec.command[0];
    let Some(prog) = resolve(name, path_var, is_executable) else {
        return Err(Error::with_code(
            format!("{name}: command not found"),
            EXIT_NOT_FOUND,
        ));
    };
    let c_prog = cstr(&prog)?;
    let argv: Vec<CString> = spec.command.iter().map(cstr).collect::<Result<_>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}")))
        .collect::<Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    sys::process::reset_signals();
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(c_prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let code = match sys::process::last_errno() {
        libc::ENOENT => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXEC,
    };
    let mut e = Error::last_os(name);
    e.code = code;
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_like_a_shell() {
        let exists = |p: &Path| p == Path::new("/bin/sh") || p == Path::new("/usr/bin/env");
        assert_eq!(
            resolve("sh", "/usr/bin:/bin", exists),
            Some("/bin/sh".into())
        );
        assert_eq!(
            resolve("env", "/usr/bin:/bin", exists),
            Some("/usr/bin/env".into())
        );
        assert_eq!(resolve("nope", "/usr/bin:/bin", exists), None);
        assert_eq!(resolve("./x", "", exists), Some("./x".into()));
    }

    #[test]
    fn env_overrides_defaults() {
        let mut s = crate::launcher::spec::test_spec();
        s.env = vec![("PATH".into(), "/x".into()), ("A".into(), "1".into())];
        let e = environment(&s, Some("xterm".into()));
        assert!(e.contains(&("PATH".into(), "/x".into())));
        assert_eq!(e.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(e.contains(&("TERM".into(), "xterm".into())));
        assert!(e.contains(&("HOME".into(), "/root".into())));
        assert!(e.contains(&("HOSTNAME".into(), "h".into())));
    }
}
