//! The `tern` binary: parses the command line and dispatches. Everything else lives in the
//! library crates (see `docs/architecture.md`).

mod cli;
mod embedded;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything starts a thread: the allocator's options (tern-alloc: mimalloc for Rust
    // and RocksDB alike, its purge delay).
    tern_alloc::configure();
    install_panic_hook();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(cli::Exit(code)) = err.downcast_ref::<cli::Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}

/// A panic is a bug: say which build hit it, print the backtrace, and abort (no unwinding past
/// half-updated state). Except `println!` into a closed pipe (`tern ps | head`): the reader
/// went away, so end quietly with the shell's status for SIGPIPE (128 + 13), as `ls | head`
/// does. (SIGPIPE itself stays ignored: servers of this binary must get EPIPE from a closed
/// socket, not die.)
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        eprintln!(
            "tern {} (git {}) panicked; this is a bug.",
            env!("CARGO_PKG_VERSION"),
            env!("TERN_GIT_HASH")
        );
        default(info);
        eprintln!("{}", std::backtrace::Backtrace::force_capture());
        std::process::abort();
    }));
}
