//! Embeds the git commit in `tern version`.
//!
//! Reruns only when the commit changes (HEAD or the branch it points at), never on the index:
//! `git status` refreshes `.git/index`, and a build script that watched it made every build
//! after any git command (and after its own `git status`) relink the binary, ~2 minutes. The
//! `-dirty` mark therefore says whether the tree differed from its commit when the commit last
//! changed. `GIT_OPTIONAL_LOCKS=0` keeps `git status` from writing the index at all.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=TERN_GIT_HASH={hash}{}", if dirty { "-dirty" } else { "" });
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head_ref}");
        }
    }
}
