//! `tidemark-operator`: `crd` prints the CustomResourceDefinitions; `run` (to come) starts the
//! controllers.

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("crd") => match tidemark_operator::crd::to_yaml() {
            Ok(yaml) => print!("{yaml}"),
            Err(e) => {
                eprintln!("Error: failed to render the CRDs: {e}");
                std::process::exit(1);
            }
        },
        Some("--version") | Some("version") => {
            println!("tidemark-operator {}", env!("CARGO_PKG_VERSION"));
        }
        _ => {
            eprintln!("usage: tidemark-operator crd | version");
            std::process::exit(2);
        }
    }
}
