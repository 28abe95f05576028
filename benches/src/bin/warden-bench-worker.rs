//! The run worker the sandbox bench's agent starts: the same code as `warden worker`.

fn main() -> std::process::ExitCode {
    warden_agent::isolation::worker_main()
}
