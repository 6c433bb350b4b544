//! All integration tests, in one test binary (one link instead of one per file).
//! Each module is one area; tests start real servers on 127.0.0.1:0 and real stores in
//! temporary folders.

mod backup;
mod classify;
mod cli;
mod daemon;
mod digest;
mod digest_crash;
mod faults;
mod fetch;
mod hostile;
mod ingest;
mod parse;
mod publish;
mod reclassify;
mod server;
mod service;

/// Writes the bundled taxonomy into `dir` as `programmes.toml`, its training set named by
/// absolute path, so a config in a temporary folder can load it as the daemon does.
pub fn bundled_taxonomy_into(dir: &std::path::Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let taxonomy = std::fs::read_to_string(format!("{root}/config/programmes.toml"))
        .expect("bundled taxonomy")
        .replace(
            "\"../fixtures/labelled\"",
            &format!("\"{root}/fixtures/labelled\""),
        );
    std::fs::write(dir.join("programmes.toml"), taxonomy).expect("taxonomy written");
}
