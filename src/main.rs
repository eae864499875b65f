fn main() {
    std::process::exit(orchestrate::cli::main());
}
