//! Names longer than NAME_MAX (255 bytes): every call that takes a name must fail with
//! ENAMETOOLONG, whether it looks a name up or creates one (one test per call, so one
//! failure doesn't hide another).

use crate::both;
use crate::fx::*;
use crate::support::*;

fn mk(m: &Mk) {
    m.file("f", 0o644, 0, 0).dir("d", 0o755, 0, 0);
}

macro_rules! too_long {
    ($name:ident, |$f:ident, $ln:ident| $call:expr) => {
        both!($name, |o| {
            let $f = fx(o, mk);
            let $ln = $f.p(&long_name());
            assert_errno($call, libc::ENAMETOOLONG, stringify!($name));
        });
    };
}

too_long!(stat, |f, ln| lstat(&ln));
too_long!(open_rdonly, |f, ln| open(&ln, libc::O_RDONLY, 0));
too_long!(open_creat, |f, ln| open(
    &ln,
    libc::O_WRONLY | libc::O_CREAT,
    0o644
));
too_long!(chmod_, |f, ln| chmod(&ln, 0o644));
too_long!(chown_, |f, ln| chown(&ln, 1, 1));
too_long!(truncate_, |f, ln| truncate(&ln, 0));
too_long!(mkdir_, |f, ln| mkdir(&ln, 0o755));
too_long!(mkfifo_, |f, ln| mkfifo(&ln, 0o644));
too_long!(symlink_, |f, ln| symlink("x", &ln));
too_long!(link_, |f, ln| link(&f.p("f"), &ln));
too_long!(rename_to, |f, ln| rename(&f.p("f"), &ln));
too_long!(rename_from, |f, ln| rename(&ln, &f.p("z")));
too_long!(unlink_, |f, ln| unlink(&ln));
too_long!(rmdir_, |f, ln| rmdir(&ln));
too_long!(utimensat_, |f, ln| utimensat(&ln, (1, 0), (1, 0), 0));
too_long!(getxattr_, |f, ln| lgetxattr(&ln, "user.x"));

both!(name_max_is_fine, |o| {
    let f = fx(o, mk);
    let n = "n".repeat(255);
    assert_ok(mkdir(&f.p(&n), 0o755), "mkdir of a 255-byte name");
    assert_ok(lstat(&f.p(&n)), "stat it");
    assert_ok(rename(&f.p(&n), &f.p(&"m".repeat(255))), "rename it");
    eq(
        list_dir(&f.p("")).unwrap().contains(&"m".repeat(255)),
        true,
        "listed",
    );
});
