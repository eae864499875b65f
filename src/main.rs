fn main() {
    // A worker (`orchestrate worker --task FILE`) runs before the CLI parses anything: what it
    // executes is `orchestrate::worker` and what that reaches, its code identity.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = orchestrate::worker::main_if_worker(&args) {
        std::process::exit(code);
    }
    std::process::exit(orchestrate::cli::main());
}
