//! Where the `tern` binary is.

use std::path::{Path, PathBuf};

/// The `tern` binary the tests run: `$TERN_BIN` if set, else `tern` in the directory above the
/// test executable's (`$CARGO_TARGET_DIR/debug/deps/<test>` → `$CARGO_TARGET_DIR/debug/tern`).
///
/// The scenarios in `e2e/tests/` are tests of the root package, so cargo builds an up-to-date
/// `tern` before it runs them (`cargo test --test e2e_failover`). Used from anywhere else, this
/// panics with what to run when the binary is missing.
pub fn tern_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TERN_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "TERN_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test executable: {e}"));
    let dir = exe.parent().and_then(Path::parent).unwrap_or_else(|| {
        panic!("the test executable {} is not inside a cargo target directory", exe.display())
    });
    let bin = dir.join(format!("tern{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the tern binary is not at {}: build it first with `source scripts/env.sh && cargo build --bin tern` \
         (or set TERN_BIN to a tern binary)",
        bin.display()
    );
    bin
}
