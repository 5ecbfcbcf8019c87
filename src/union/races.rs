//! Races between requests, forced: `Union::race_hook` holds one thread at a
//! `race_point` while another request runs. Where the race is closed, the other
//! request waits for the held one, and the hold ends after `PATIENCE`.

use super::copyup::CopyData;
use super::inode::{Node, ROOT_ID};
use super::{layers, Config, Union};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a held thread waits for the other request.
const PATIENCE: Duration = Duration::from_secs(1);

struct Fixture {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    union: Arc<Union>,
}

/// A union of one lower layer holding `d/NAME` for each name, an upper and a
/// workdir.
fn fixture(names: &[&str]) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = |n: &str| {
        let p = tmp.path().join(n);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    };
    let (lower, upper, work) = (dir("lower"), dir("upper"), dir("work"));
    std::fs::create_dir(lower.join("d")).expect("mkdir d");
    for n in names {
        std::fs::write(lower.join("d").join(n), format!("lower {n}\n")).expect("write");
    }
    let config = Config {
        lowers: vec![lower],
        upper: Some(upper),
        work: Some(work.clone()),
        ..Config::default()
    };
    let layers = layers::open(&config).expect("layers");
    let union = Arc::new(Union::new(layers, &config).expect("union"));
    Fixture {
        _tmp: tmp,
        work,
        union,
    }
}

impl Fixture {
    fn lookup(&self, parent: &Arc<Node>, name: &str) -> Arc<Node> {
        self.union
            .lookup_node(parent, OsStr::new(name))
            .expect(name)
            .0
    }

    fn root(&self) -> Arc<Node> {
        self.union.node(ROOT_ID).expect("root")
    }

    /// What is staged in the workdir, but for the shared whiteout (kept there
    /// until the session ends).
    fn staged(&self) -> Vec<OsString> {
        let shared = self.union.shared_whiteout.lock().unwrap().clone();
        std::fs::read_dir(self.work.join("work"))
            .expect("read workdir")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| Some(n) != shared.as_ref())
            .collect()
    }
}

/// Holds the first thread that reaches `point` until the returned sender
/// sends (or PATIENCE has passed); the receiver hears when it got there.
fn hold_at(union: &Union, point: &'static str) -> (Receiver<()>, Sender<()>) {
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    let once = Mutex::new(Some((reached_tx, release_rx)));
    *union.race_hook.lock().unwrap() = Some(Arc::new(move |at| {
        if at != point {
            return;
        }
        let Some((reached, release)) = once.lock().unwrap().take() else {
            return;
        };
        let _ = reached.send(());
        let _ = release.recv_timeout(PATIENCE);
    }));
    (reached_rx, release_tx)
}

/// An unlink lands while a copy-up of the same file (an open for write: the
/// kernel holds no lock across the two) has renamed the copy into place but
/// not yet told the node. It used to find no node for the upper object, so
/// the node kept naming what replaced it, the whiteout: an open through it got
/// ENXIO, and a link() from it (the kernel sends one once the node is reused
/// for a new file on the freed inode) staged a link of the whiteout in the
/// workdir, renamed it over the target whiteout (the same inode: rename does
/// nothing) and left it there after the unmount.
#[test]
fn an_unlink_racing_a_copy_up_reaches_the_node() {
    let f = fixture(&["f", "g"]);
    let d = f.lookup(&f.root(), "d");
    let file = f.lookup(&d, "f");
    // g is a whiteout: the target of the link() below.
    f.union
        .remove(&d, OsStr::new("g"), false)
        .expect("unlink g");

    let (reached, release) = hold_at(&f.union, "copy-up:published");
    let copier = {
        let (u, n) = (f.union.clone(), file.clone());
        std::thread::spawn(move || u.copy_up(&n, CopyData::Full))
    };
    reached
        .recv_timeout(Duration::from_secs(10))
        .expect("the copy-up got to its rename");
    let remover = {
        let (u, d) = (f.union.clone(), d.clone());
        std::thread::spawn(move || {
            let res = u.remove(&d, OsStr::new("f"), false);
            let _ = release.send(());
            res
        })
    };
    assert_eq!(remover.join().unwrap(), Ok(()), "unlink of f");
    let copied = copier.join().unwrap();
    assert!(
        matches!(copied, Ok(()) | Err(libc::ENOENT)),
        "copy-up: {copied:?}"
    );

    assert!(
        file.state().unlinked,
        "the node of f does not know it is gone"
    );
    // An open of the node (the kernel's file stays open-able) reaches the
    // copied-up file, never the whiteout at its old name.
    let opened = f.union.open_file(&file, libc::O_WRONLY).map(drop);
    assert!(
        matches!(opened, Ok(()) | Err(libc::ENOENT)),
        "open of the removed node: {opened:?}"
    );
    let linked = f.union.link(&file, &d, OsStr::new("g")).map(drop);
    assert_eq!(linked, Err(libc::ENOENT), "link from the removed node");
    assert_eq!(f.staged(), Vec::<OsString>::new(), "left in the workdir");
}

/// An unlink of an upper file lands while an open of it has located the file
/// by name but not opened it yet (the kernel holds no lock across the two).
/// The open used to open what was at the name by then: the whiteout, ENXIO.
#[test]
fn an_unlink_racing_an_open_leaves_the_open_its_file() {
    let f = fixture(&["f"]);
    let d = f.lookup(&f.root(), "d");
    let file = f.lookup(&d, "f");
    f.union.copy_up(&file, CopyData::Full).expect("copy-up");

    let (reached, release) = hold_at(&f.union, "open:located");
    let opener = {
        let (u, n) = (f.union.clone(), file.clone());
        std::thread::spawn(move || {
            u.open_file(&n, libc::O_WRONLY)
                .and_then(|(fd, _)| crate::sys::fstat(fd.as_fd()).map_err(super::err))
        })
    };
    reached
        .recv_timeout(Duration::from_secs(10))
        .expect("the open located the file");
    let remover = {
        let (u, d) = (f.union.clone(), d.clone());
        std::thread::spawn(move || {
            let res = u.remove(&d, OsStr::new("f"), false);
            let _ = release.send(());
            res
        })
    };
    assert_eq!(remover.join().unwrap(), Ok(()), "unlink of f");
    let opened = opener.join().unwrap();
    match opened {
        Ok(st) => assert_eq!(
            crate::sys::file_type(st.st_mode),
            libc::S_IFREG,
            "the open got something else than the file"
        ),
        Err(e) => panic!("open of f while it was unlinked: errno {e}"),
    }
}
