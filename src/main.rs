//! The `newsrelay` binary: parses the command line and turns failures into one stderr line and
//! an exit status (0 success, 1 runtime failure, 2 usage or config error).

use clap::Parser;
use newsrelay::cli::{self, Cli};

fn main() {
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
