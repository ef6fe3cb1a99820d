//! Any bytes as a model file. The loader must answer `Ok` or a clear `Err` and never panic,
//! hang or over-allocate; a file it accepts must embed a buffer without panicking, and every
//! embedding it produces for a finite buffer must be the right length. A model whose principal
//! axes do not fit its embedding still loads and embeds (the outputs refuse those axes, with a
//! message: `Pca::validate`); axes that pass that check must project every embedding onto all
//! of them.

#![no_main]

use echoic_core::frame::SILENCE_DB;
use echoic_core::listener::Listener;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut listener) = Listener::from_bytes(data) else {
        return;
    };
    let n_bands = listener.metadata().features.n_bands;
    let values = listener.sequence_len();
    let mut out = vec![0.0; listener.latent_dim()];
    // Silence, then a loud sloped spectrum: the two ends of what the worker feeds it.
    for level in [SILENCE_DB, 0.0] {
        let buffer: Vec<f32> = (0..values)
            .map(|i| level - (i % n_bands) as f32 * 0.25)
            .collect();
        listener
            .embed_into(&buffer, &mut out)
            .expect("a loaded model embeds a buffer of its own shape");
        let latent = out.len();
        let pca = listener.metadata().pca.as_ref();
        if let Some(pca) = pca.filter(|p| p.validate(latent).is_ok()) {
            let mut axes = [0.0; 8];
            assert_eq!(
                pca.project(&out, &mut axes),
                pca.n_axes(),
                "a PCA that validates projects onto every axis"
            );
        }
    }
});
