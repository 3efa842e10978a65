//! The `tidemark` CLI built inside the test crate, so integration tests can run the real
//! binary through `CARGO_BIN_EXE_tidemark-under-test` (same entry point as `worker/src/main.rs`).

fn main() {
    tidemark::cli::main()
}
