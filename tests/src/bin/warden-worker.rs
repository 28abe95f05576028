//! The run worker the integration tests' agent service starts for each run: the same
//! code as `warden worker`, as a binary of this package so tests can find it.

fn main() -> std::process::ExitCode {
    warden_agent::isolation::worker_main()
}
