//! The `bftswarm` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    bftswarm::cli::main()
}
