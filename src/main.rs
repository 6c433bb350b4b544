//! The `newsrelay` binary: parses the command line and turns failures into one stderr line and
//! an exit status (0 success, 1 runtime failure, 2 usage or config error).

use clap::Parser;
use newsrelay::cli::{self, Cli};

/// At most this many glibc malloc arenas. glibc gives each thread that contends for the
/// allocator an arena of its own (up to 8 per core) and keeps their freed memory, so the many
/// short-lived blocking threads of a fetch cycle and the server's renders left most of the
/// resident memory as fragmentation: a 2,000-feed first cycle peaked at 227 MB with the
/// default and 150 MB with 2 arenas, and a daemon under wrk load held 150 MB against 95 MB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 2;

fn main() {
    // Before any thread exists; an operator's MALLOC_ARENA_MAX still wins.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; called before any other thread runs.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
    let parsed = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(f) = cli::run(parsed) {
        eprintln!("newsrelay: {}", cli::one_line(&f.error));
        std::process::exit(f.code);
    }
}
