//! `tidemark`: thin entry point; parsing lives in `tidemark::cli`, work in its handlers and `tidemark::service`.

fn main() {
    tidemark::cli::main()
}
