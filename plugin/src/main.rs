//! The `echoic` binary: the standalone application.

fn main() {
    #[cfg(feature = "standalone")]
    nice_plug::prelude::nice_export_standalone::<echoic::Echoic>();
    #[cfg(not(feature = "standalone"))]
    eprintln!("echoic was built without the `standalone` feature");
}
