//! The `echoic` binary: the command-line tools when the first argument names one (`echoic
//! corpus ...`, see `echoic_tools::cli`), the standalone application otherwise.

use echoic_tools::cli;

fn main() {
    if let Some(first) = std::env::args().nth(1) {
        if cli::is_tool_command(&first) {
            if let Err(e) = cli::run() {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            return;
        }
    }
    #[cfg(feature = "standalone")]
    nice_plug::prelude::nice_export_standalone::<echoic::Echoic>();
    #[cfg(not(feature = "standalone"))]
    eprintln!("echoic was built without the `standalone` feature");
}
