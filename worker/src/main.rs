//! `tidemark`: thin entry point; parsing lives in `tidemark::cli`, work in `tidemark::app`.

fn main() {
    tidemark::app::main()
}
