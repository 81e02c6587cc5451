//! The `spool` binary: parses arguments, wires services, maps errors to exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
